-- migrations-wasm/python/v008_add_display_names on PostgreSQL: the display name is the name as
-- Unicode NFKC with its spaces collapsed, in title case; the search key drops accents and case.
ALTER TABLE users ADD COLUMN display_name text, ADD COLUMN name_key text;
UPDATE users SET
    display_name = initcap(btrim(regexp_replace(normalize(name, NFKC), '\s+', ' ', 'g'))),
    name_key = lower(btrim(regexp_replace(
        regexp_replace(normalize(name, NFKD), '[\u0300-\u036f]', '', 'g'), '\s+', ' ', 'g')));
