// Reads a prune-tokens manifest with DuckDB and prints, as one JSON object,
// its column types, its rows in file order (binary columns as lowercase hex),
// its key/value metadata, and the rows digest recomputed here from the
// README's definition. A Go test compares this with what prune-tokens wrote,
// so the manifest is proven readable by an independent Parquet reader and
// its digest checkable without prune-tokens. Exits 1 if the recomputed
// digest differs from the file's prune-tokens.rows_sha256.
//
// usage: node read-manifest.mjs FILE.parquet
import { createHash } from 'node:crypto';
import { DuckDBInstance } from '@duckdb/node-api';

const path = process.argv[2];
if (!path) {
  console.error('usage: node read-manifest.mjs FILE.parquet');
  process.exit(2);
}

const instance = await DuckDBInstance.create(':memory:');
const conn = await instance.connect();

const columns = (await conn.runAndReadAll(
  'SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet($1))', [path],
)).getRowObjectsJson();

// file_row_number keeps the file order explicit rather than trusting the scan.
const rows = (await conn.runAndReadAll(
  `SELECT stage, table_name, lower(hex(id)) AS id, lower(hex(uid)) AS uid,
          CAST(created_at AS VARCHAR) AS created_at
     FROM read_parquet($1, file_row_number = true)
    ORDER BY file_row_number`, [path],
)).getRowObjectsJson();

const kv = (await conn.runAndReadAll(
  'SELECT decode(key) AS key, decode(value) AS value FROM parquet_kv_metadata($1)', [path],
)).getRowObjectsJson();
const metadata = Object.fromEntries(kv.map((r) => [r.key, r.value]));

// README, "The manifest": SHA-256 over the rows in file order, each row as
// uvarint-length-prefixed stage, table_name, id, uid, then created_at as 8
// bytes big-endian.
function uvarint(n) {
  const out = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}
const digest = createHash('sha256');
for (const r of rows) {
  for (const field of [Buffer.from(r.stage, 'utf8'), Buffer.from(r.table_name, 'utf8'),
    Buffer.from(r.id, 'hex'), Buffer.from(r.uid, 'hex')]) {
    digest.update(uvarint(field.length));
    digest.update(field);
  }
  const createdAt = Buffer.alloc(8);
  createdAt.writeBigInt64BE(BigInt(r.created_at));
  digest.update(createdAt);
}
const rowsSHA256 = digest.digest('hex');

process.stdout.write(JSON.stringify({ columns, rows, metadata, rows_sha256: rowsSHA256 }) + '\n');
if (rowsSHA256 !== metadata['prune-tokens.rows_sha256']) {
  console.error(`rows digest recomputed from the rows is ${rowsSHA256}, the file's metadata says ${metadata['prune-tokens.rows_sha256']}`);
  process.exit(1);
}

