-- The one-time data blocks that already ran, read from the ledger when it exists. The
-- ledger is never managed, and a plain FROM would fail where it does not exist yet, so
-- the rows travel as the XML of query_to_xml, called only when to_regclass finds the
-- table (datablocks.ran_blocks() reads it).
SELECT query_to_xml(format('SELECT name, sha256, ran_at FROM %I.data_blocks ORDER BY name', :'ledger_schema'),
                    false, false, '')::text AS xml
WHERE to_regclass(format('%I.data_blocks', :'ledger_schema')) IS NOT NULL
