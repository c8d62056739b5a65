-- IRREVERSIBLE (no down file): legacy_table's rows move into new_table, which replaces it.
-- Each `key = value; …` string becomes its pairs trimmed and sorted: `a=1;b=2`.
CREATE TABLE new_table (
    id bigint PRIMARY KEY,
    transformed_data text NOT NULL
);
DO $$
BEGIN
    IF to_regclass('legacy_table') IS NOT NULL THEN
        INSERT INTO new_table (id, transformed_data)
        SELECT l.id, coalesce((
            SELECT string_agg(pair, ';' ORDER BY pair COLLATE "C")
              FROM (SELECT trim(split_part(p, '=', 1)) || '=' || trim(substr(p, strpos(p, '=') + 1)) AS pair
                      FROM unnest(string_to_array(coalesce(l.data, ''), ';')) AS p
                     WHERE strpos(p, '=') > 0) AS pairs), '')
          FROM legacy_table AS l;
        DROP TABLE legacy_table;
    END IF;
END
$$;
