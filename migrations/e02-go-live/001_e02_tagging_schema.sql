-- E02 (seed 004): the document tagging schema, and tags for every existing document.
--
-- Lookup tables (domains, categories, statuses), document_tags (one row per document, cascade-deleted with
-- it), tag_audit (every tag assignment and change, written by a trigger), the 5 indices of the seed's
-- checklist, and the classifier trigger that tags each new document as it is imported. The backfill at
-- the end tags every document already there ("150,000 documents with tags"), which also fills the audit
-- trail ("150K+ entries logged").
--
-- No down file on purpose: seed 004 rolls E02 back by restoring the pre-migration snapshot
-- (pg_restore of the backup the go-live takes first), and so does runbook (postgres.migrate's undo).
-- The functions are CREATE OR REPLACE: a restore puts back every table, row and trigger as they were,
-- but (as of now) leaves functions created since the snapshot in place, and a retry must not trip on them.

CREATE TABLE tag_domains (
    id   smallint PRIMARY KEY,
    name text NOT NULL UNIQUE
);
CREATE TABLE tag_categories (
    id        smallint PRIMARY KEY,
    domain_id smallint NOT NULL REFERENCES tag_domains (id),
    name      text NOT NULL,
    kind      text NOT NULL UNIQUE          -- the document kind the classifier maps to this category
);
CREATE TABLE tag_statuses (
    id   smallint PRIMARY KEY,
    name text NOT NULL UNIQUE
);
INSERT INTO tag_domains VALUES (1, 'Finance'), (2, 'Ops'), (3, 'Compliance'), (4, 'Product');
INSERT INTO tag_categories VALUES
    (1, 1, 'Invoice', 'invoice'), (2, 1, 'Receipt', 'receipt'),
    (3, 3, 'Contract', 'contract'), (4, 2, 'Report', 'report'), (5, 4, 'Other', 'other');
INSERT INTO tag_statuses VALUES (1, 'auto_assigned'), (2, 'needs_review'), (3, 'confirmed');

CREATE TABLE document_tags (
    document_id bigint PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    domain_id   smallint NOT NULL REFERENCES tag_domains (id),
    category_id smallint NOT NULL REFERENCES tag_categories (id),
    status_id   smallint NOT NULL REFERENCES tag_statuses (id),
    assigned_at timestamptz NOT NULL DEFAULT now(),
    assigned_by text NOT NULL DEFAULT 'classifier'
);
CREATE TABLE tag_audit (
    id          bigserial PRIMARY KEY,
    document_id bigint NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    action      text NOT NULL,
    old_tags    jsonb,
    new_tags    jsonb NOT NULL,
    actor       text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);

-- the checklist's "5 indices"
CREATE INDEX ix_document_tags_domain ON document_tags (domain_id);
CREATE INDEX ix_document_tags_category ON document_tags (category_id);
CREATE INDEX ix_document_tags_status ON document_tags (status_id);
CREATE INDEX ix_document_tags_assigned_at ON document_tags (assigned_at);
CREATE INDEX ix_tag_audit_document ON tag_audit (document_id, at);

CREATE OR REPLACE FUNCTION tag_audit_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tag_audit (document_id, action, old_tags, new_tags, actor)
    VALUES (NEW.document_id, lower(TG_OP),
            CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) - 'assigned_at' END,
            to_jsonb(NEW) - 'assigned_at', NEW.assigned_by);
    RETURN NULL;
END $$;
CREATE TRIGGER document_tags_audit AFTER INSERT OR UPDATE ON document_tags
    FOR EACH ROW EXECUTE FUNCTION tag_audit_write();

CREATE OR REPLACE FUNCTION classify_document() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO document_tags (document_id, domain_id, category_id, status_id)
    SELECT NEW.id, c.domain_id, c.id, CASE WHEN c.kind = 'other' THEN 2 ELSE 1 END
      FROM tag_categories c
     WHERE c.kind = CASE WHEN NEW.kind IN (SELECT kind FROM tag_categories) THEN NEW.kind ELSE 'other' END;
    RETURN NULL;
END $$;
CREATE TRIGGER documents_classify AFTER INSERT ON documents
    FOR EACH ROW EXECUTE FUNCTION classify_document();

-- backfill: every document there now gets its tags (and, through the trigger, its audit entry)
INSERT INTO document_tags (document_id, domain_id, category_id, status_id, assigned_by)
SELECT d.id, c.domain_id, c.id, CASE WHEN c.kind = 'other' THEN 2 ELSE 1 END, 'e02-backfill'
  FROM documents d
  JOIN tag_categories c
    ON c.kind = CASE WHEN d.kind IN (SELECT kind FROM tag_categories) THEN d.kind ELSE 'other' END;
