-- compose-deploy (seed 001), release v2: users get a display name, backfilled from their e-mail address.
ALTER TABLE users ADD COLUMN display_name text;
UPDATE users SET display_name = split_part(email, '@', 1);
ALTER TABLE users ALTER COLUMN display_name SET NOT NULL;
CREATE INDEX users_display_name ON users (lower(display_name));
