-- v2: conversations get a title (backfilled from their first message) and a cursor-pagination index
-- (seed 002: "cursor pagination ... 254x faster").
ALTER TABLE conversations ADD COLUMN title text;
UPDATE conversations c
   SET title = left(m.content, 80)
  FROM (SELECT DISTINCT ON (conversation_id) conversation_id, content
          FROM messages ORDER BY conversation_id, id) m
 WHERE m.conversation_id = c.id;
CREATE INDEX conversations_created_id ON conversations (created_at DESC, id DESC);
