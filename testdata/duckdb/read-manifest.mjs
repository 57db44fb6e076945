// Reads a prune-tokens manifest with DuckDB and prints, as one JSON object,
// its column types, its rows in file order (binary columns as lowercase hex)
// and its key/value metadata. A Go test compares this with what prune-tokens
// wrote, so the manifest is proven readable by an independent Parquet reader.
//
// usage: node read-manifest.mjs FILE.parquet
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

process.stdout.write(JSON.stringify({ columns, rows, metadata }) + '\n');
