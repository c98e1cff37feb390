"""The SQL of ChadMemoryStore: writes, reads, TTL refresh and the sweep of expired items.

Kept apart from the store class so the statements read as one piece, beside the columns
and conditions they share; the store and the sweeper only choose and run them.
"""

from __future__ import annotations

# source_type and namespace of the `embeddings` rows that hold store items' vectors.
VECTOR_SOURCE = "langgraph_store"
LIVE = "(i.expires_at IS NULL OR i.expires_at > now())"
# Planner switches turned off for an index search (see ChadMemoryStore._vector_search).
INDEX_ONLY = ("enable_seqscan", "enable_hashjoin", "enable_mergejoin", "enable_sort")
ITEM_COLUMNS = "i.id, i.prefix, i.key, i.value, i.created_at, i.updated_at"

PUT_SQL = f"""
WITH dropped AS (
    DELETE FROM store_items s
    USING unnest($2::text[], $3::text[]) AS d(prefix, key)
    WHERE s.actor = $1 AND s.prefix = d.prefix AND s.key = d.key
    RETURNING s.id
), written AS (
    INSERT INTO store_items AS s (actor, prefix, key, value, expires_at, ttl_minutes)
    SELECT $1, w.prefix, w.key, w.value, now() + w.ttl * interval '1 minute', w.ttl
    FROM unnest($4::text[], $5::text[], $6::jsonb[], $7::float8[]) AS w(prefix, key, value, ttl)
    ON CONFLICT (actor, prefix, key) DO UPDATE
    SET value = EXCLUDED.value, updated_at = now(),
        expires_at = EXCLUDED.expires_at, ttl_minutes = EXCLUDED.ttl_minutes
    RETURNING s.id, s.prefix, s.key
), unindexed AS (
    -- Every touched key's old vectors (this statement's snapshot: before the upsert).
    DELETE FROM embeddings e
    USING unnest($13::text[], $14::text[]) AS t(prefix, key), store_items s
    WHERE s.actor = $1 AND s.prefix = t.prefix AND s.key = t.key
      AND e.actor = $1 AND e.source_type = '{VECTOR_SOURCE}' AND e.source_id = s.id
), indexed AS (
    INSERT INTO embeddings (id, actor, namespace, source_type, source_id, content, embedding,
                            metadata)
    SELECT gen_random_uuid(), $1, '{VECTOR_SOURCE}', '{VECTOR_SOURCE}', w.id, v.content,
           v.embedding, jsonb_build_object('field', v.field)
    FROM unnest($8::text[], $9::text[], $10::text[], $11::text[], $12::vector[])
         AS v(prefix, key, field, content, embedding)
    JOIN written w ON w.prefix = v.prefix AND w.key = v.key
)
SELECT 1
"""

# Refreshes on read never wait for a row lock (SKIP LOCKED): two reads refreshing the same
# rows in different orders cannot deadlock, and a row a put is writing gets its expiry
# from that put. Only live rows are refreshed: an expired one is not brought back.
GET_SQL = """
WITH wanted AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::bool[]) WITH ORDINALITY
        AS w(prefix, key, refresh, n)
), refreshed AS (
    UPDATE store_items s SET expires_at = now() + s.ttl_minutes * interval '1 minute'
    WHERE s.id IN (
        SELECT t.id FROM wanted w JOIN store_items t
            ON t.actor = $1 AND t.prefix = w.prefix AND t.key = w.key
        WHERE w.refresh AND t.expires_at > now()
        FOR UPDATE OF t SKIP LOCKED
    )
)
SELECT w.n, s.prefix, s.key, s.value, s.created_at, s.updated_at
FROM wanted w JOIN store_items s ON s.actor = $1 AND s.prefix = w.prefix AND s.key = w.key
WHERE NOT $5::bool OR s.expires_at IS NULL OR s.expires_at > now()
"""

# One transaction-scoped advisory lock per (actor, namespace, key) a batch of puts touches.
LOCK_KEYS = """
SELECT count(pg_advisory_xact_lock(h)) FROM (
    SELECT DISTINCT hashtextextended($1 || chr(31) || t.prefix || chr(31) || t.key, 8) AS h
    FROM unnest($2::text[], $3::text[]) AS t(prefix, key) ORDER BY h
) locks
"""

REFRESH_SQL = """
WITH found AS ({search}), refreshed AS (
    UPDATE store_items s SET expires_at = now() + s.ttl_minutes * interval '1 minute'
    WHERE s.id IN (
        -- expires_at > now() (set exactly when ttl_minutes is) can use the partial index.
        SELECT t.id FROM found f JOIN store_items t ON t.id = f.id
        WHERE t.expires_at > now()
        FOR UPDATE OF t SKIP LOCKED
    )
)
SELECT * FROM found ORDER BY {order}
"""

SWEEP_SQL = f"""
WITH gone AS (
    -- Rows another transaction holds are left for the next sweep, never waited for.
    DELETE FROM store_items WHERE id IN (
        SELECT id FROM store_items WHERE expires_at <= now() {{actor}} FOR UPDATE SKIP LOCKED
    ) RETURNING actor, id
), unindexed AS (
    DELETE FROM embeddings e USING gone
    WHERE e.actor = gone.actor AND e.source_type = '{VECTOR_SOURCE}' AND e.source_id = gone.id
)
SELECT count(*) FROM gone
"""
