x: app-no-ext
