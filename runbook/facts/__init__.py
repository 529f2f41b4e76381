"""Facts: pure parsers for what a host reports (/proc files, cgroup files, df, version strings,
dotenv files, socket tables). No I/O here; step kinds read the raw text and hand it over."""
