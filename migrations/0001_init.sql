-- 0001_init: the regate schema itself.
-- The runner creates schema regate and its bookkeeping tables before this file runs; this file sets the
-- schema's documentation and privileges. Nobody but the owner creates objects in it.

comment on schema regate is
'regate-db: regression gates for ML training (https://pypi.org/project/regate-db/). Managed by regate-db migrate.';

revoke all on schema regate from public;
