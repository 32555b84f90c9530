-- 0011_treasury_totals: each accepted upload keeps its totals per currency, so its record (the
-- 201 answer, the list, GET by id) reports them without re-reading its rows. Aligned with
-- `currencies` (sorted): `currency_totals[i]` is the exact sum (canonical decimal text) and
-- `currency_accounts[i]` the number of rows in `currencies[i]`.

ALTER TABLE treasury_uploads ADD COLUMN currency_totals text[] NOT NULL DEFAULT '{}';
ALTER TABLE treasury_uploads ADD COLUMN currency_accounts integer[] NOT NULL DEFAULT '{}';
ALTER TABLE treasury_uploads ADD CONSTRAINT treasury_uploads_totals_aligned
    CHECK (cardinality(currency_totals) = cardinality(currencies) AND cardinality(currency_accounts) = cardinality(currencies));
