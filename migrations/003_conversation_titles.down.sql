DROP INDEX conversations_created_id;
ALTER TABLE conversations DROP COLUMN title;
