-- The original trigger function, plus one escape hatch: a migration backfill sets
-- mcb.preserve_updated_at = 'on' for its own transaction so that filling a new column does not change
-- the legacy updated_at values (the original's own writes are unaffected).
CREATE OR REPLACE FUNCTION update_updated_at_column() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('mcb.preserve_updated_at', true) = 'on' THEN
        RETURN NEW;
    END IF;
    NEW.updated_at = NOW();
    RETURN NEW;
END;
$$
