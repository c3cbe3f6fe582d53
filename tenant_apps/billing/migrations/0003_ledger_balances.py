"""Postgres itself refuses an unbalanced ledger transaction, and any change to a posted entry.

A deferred constraint trigger on ledger entries checks, when the database transaction that wrote
them commits, that each touched ledger transaction's entries sum to zero per currency. Entries are
append-only: a mistake is corrected by a reversing transaction. Written in plpgsql, which every
Postgres has.
"""

from django.db import migrations

CREATE = """
CREATE FUNCTION billing_ledger_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    bad_currency text;
    bad_total bigint;
BEGIN
    -- The table of the schema that fired the trigger, whatever the search_path is.
    EXECUTE format(
        'SELECT currency, SUM(amount_minor) FROM %I.billing_ledgerentry WHERE transaction_id = $1 '
        'GROUP BY currency HAVING SUM(amount_minor) <> 0 LIMIT 1',
        TG_TABLE_SCHEMA
    ) INTO bad_currency, bad_total USING NEW.transaction_id;
    IF bad_total IS NOT NULL THEN
        RAISE EXCEPTION 'ledger transaction % does not balance: % %', NEW.transaction_id, bad_total, bad_currency
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER billing_ledger_balanced
    AFTER INSERT OR UPDATE ON billing_ledgerentry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION billing_ledger_balanced();
CREATE FUNCTION billing_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are never changed or deleted; post a reversing transaction'
        USING ERRCODE = 'check_violation';
END;
$$;
CREATE TRIGGER billing_ledger_append_only
    BEFORE UPDATE OR DELETE ON billing_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION billing_ledger_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS billing_ledger_append_only ON billing_ledgerentry;
DROP FUNCTION IF EXISTS billing_ledger_append_only();
DROP TRIGGER IF EXISTS billing_ledger_balanced ON billing_ledgerentry;
DROP FUNCTION IF EXISTS billing_ledger_balanced();
"""


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_payments")]

    operations = [migrations.RunSQL(CREATE, DROP)]
