-- v1: conversations, the app's first table.
CREATE TABLE conversations (
    id         bigserial PRIMARY KEY,
    user_id    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_user_id ON conversations (user_id);
