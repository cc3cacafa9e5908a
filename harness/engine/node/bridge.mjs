#!/usr/bin/env node
// Prisma query engine for prisma-client-py with no engine download.
//
// Serves the native query engine's HTTP protocol (what prisma-client-py spawns as
// `<exe> -p PORT --enable-metrics --enable-raw-queries`) and runs every request on Prisma's
// official WebAssembly query engine (@prisma/query-engine-wasm) with the Postgres driver adapter
// (@prisma/adapter-pg + pg). The protocol translation lives in translate.mjs.
//
// Environment: PRISMA_DML_PATH (schema file), OVERWRITE_DATASOURCES (JSON, when the url is
// overridden), otherwise the schema's datasource url (usually env("DATABASE_URL")).
// HARNESS_PRISMA_RAW_FORMAT=legacy|columns forces the raw-query answer shape (default: detected
// from the generated client next to PRISMA_DML_PATH). HARNESS_BRIDGE_DEBUG=1 logs every request.

import './clock.mjs'; // first: the engine's Date follows the scenario's clock
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

import {
  bindLimitError,
  BridgeError,
  datasourceUrl,
  errorBody,
  parseDatabaseUrl,
  parseLossless,
  RawNumber,
  rawFormatFromSource,
  refuseOverBindLimit,
  stringify,
  translateAnswer,
  translateRequest,
} from './translate.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
// The engine hash prisma 0.11.0 (Prisma CLI 5.4.2) expects from `query-engine --version`.
const DEFAULT_ENGINE_HASH = 'ac9d7041ed77bcc8a8dbd2ab6616b39013829574';
const DEBUG = !!process.env.HARNESS_BRIDGE_DEBUG;

function log(line) {
  process.stderr.write(`${line}\n`);
}

function packageVersion(name) {
  try {
    return JSON.parse(readFileSync(path.join(HERE, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return 'unknown';
  }
}

// ------------------------------------------------------------------------------------------
// command line

function parseArgs(argv) {
  const opts = { port: 4466, version: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--version' || a === '-V' || a === 'version') opts.version = true;
    else if (a === '-p' || a === '--port') opts.port = Number(argv[++i]);
    else if (a.startsWith('--port=')) opts.port = Number(a.slice('--port='.length));
    else if (a === '-h' || a === '--host') i++; // always 127.0.0.1
    // --enable-metrics, --enable-raw-queries, --enable-playground, --debug: accepted, nothing to do
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    throw new BridgeError(`invalid port ${opts.port}`);
  }
  return opts;
}

// ------------------------------------------------------------------------------------------
// the wasm engine

async function loadQueryEngineModule() {
  const dir = path.join(HERE, 'node_modules', '@prisma', 'query-engine-wasm', 'postgresql');
  const glue = await import(pathToFileURL(path.join(dir, 'query_engine_bg.js')).href);
  const bytes = readFileSync(path.join(dir, 'query_engine_bg.wasm'));
  const { instance } = await WebAssembly.instantiate(bytes, { './query_engine_bg.js': glue });
  glue.__wbg_set_wasm(instance.exports);
  return glue;
}

// The DMMF (~6 MB of JSON, ~0.5-0.8 s to compute) is reduced to a small type index, computed
// in a worker thread so /status keeps answering, and cached on disk per schema.
function typeIndexCachePath(schemaText) {
  const key = createHash('sha256')
    .update(packageVersion('@prisma/prisma-schema-wasm'))
    .update('\0')
    .update(schemaText)
    .digest('hex')
    .slice(0, 24);
  return path.join(HERE, '.type-index-cache', `${key}.json`);
}

function computeTypeIndexInWorker(schemaText) {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    (async () => {
      try {
        const psw = require(workerData.schemaWasm);
        const { buildTypeIndex } = await import(workerData.translate);
        const dmmf = JSON.parse(psw.get_dmmf(JSON.stringify({ prismaSchema: workerData.schema })));
        parentPort.postMessage({ ok: true, index: buildTypeIndex(dmmf) });
      } catch (e) {
        parentPort.postMessage({ ok: false, error: String((e && e.message) || e) });
      }
    })();`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, {
      eval: true,
      workerData: {
        schema: schemaText,
        schemaWasm: require.resolve('@prisma/prisma-schema-wasm'),
        translate: pathToFileURL(path.join(HERE, 'translate.mjs')).href,
      },
    });
    worker.once('message', (m) => {
      worker.terminate();
      if (m.ok) resolve(m.index);
      else reject(new BridgeError(`could not read the schema: ${m.error}`));
    });
    worker.once('error', reject);
  });
}

async function loadTypeIndex(schemaText) {
  const file = typeIndexCachePath(schemaText);
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    // not cached yet
  }
  const index = await computeTypeIndexInWorker(schemaText);
  try {
    mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(index));
    renameSync(tmp, file);
  } catch {
    // read-only install: compute again next time
  }
  return index;
}

// ------------------------------------------------------------------------------------------
// Postgres types @prisma/adapter-pg 5.22 cannot map (e.g. `name[]` in LiteLLM's startup view
// check) make it fail the whole raw query. Such columns are handed over as text / text[].

const ADAPTER_OIDS = new Set([
  16, 17, 20, 21, 23, 25, 26, 114, 142, 650, 700, 701, 790, 869, 1042, 1043, 1082, 1083, 1114, 1184,
  1266, 1560, 1562, 1700, 2950, 3802,
  // arrays the adapter maps
  143, 199, 651, 791, 1000, 1001, 1002, 1005, 1007, 1009, 1014, 1015, 1016, 1021, 1022, 1028, 1041,
  1115, 1182, 1183, 1231, 1561, 1563, 2951, 3807,
]);
// Built-in array types (pg_type.typcategory = 'A', oid < 10000, read from PostgreSQL 18) whose text
// form is `{...}`; int2vector (22) and oidvector (30) are space-separated and stay plain text.
const BUILTIN_ARRAY_OIDS = new Set([
  143, 199, 210, 270, 271, 272, 273, 629, 651, 719, 775, 791, 1000, 1001, 1002, 1003, 1005, 1006, 1007,
  1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015, 1016, 1017, 1018, 1019, 1020, 1021, 1022, 1027, 1028,
  1034, 1040, 1041, 1115, 1182, 1183, 1185, 1187, 1231, 1263, 1270, 1561, 1563, 2201, 2207, 2208, 2209,
  2210, 2211, 2949, 2951, 3221, 3643, 3644, 3645, 3735, 3770, 3807, 3905, 3907, 3909, 3911, 3913, 3927,
  4073, 4090, 4097, 4192, 5039, 6150, 6151, 6152, 6153, 6155, 6157,
]);

function unmapped(oid) {
  return oid < 10000 && !ADAPTER_OIDS.has(oid);
}

function asText(v) {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'object' && typeof v.toPostgres === 'function') return v.toPostgres();
  return typeof v === 'string' ? v : String(v);
}

function installUnmappedTypeFallback(pg, parseArray) {
  const identity = (s) => s;
  const withTextParsers = (config) => {
    if (!config || typeof config !== 'object' || config.rowMode !== 'array') return config;
    const inner = config.types;
    return {
      ...config,
      types: {
        getTypeParser: (oid, format) => {
          if (unmapped(oid)) return identity;
          return inner ? inner.getTypeParser(oid, format) : pg.types.getTypeParser(oid, format);
        },
      },
    };
  };
  const fixResult = (res) => {
    if (!res || !Array.isArray(res.fields)) return res;
    res.fields.forEach((field, i) => {
      if (!unmapped(field.dataTypeID)) return;
      const isArray = BUILTIN_ARRAY_OIDS.has(field.dataTypeID);
      field.dataTypeID = isArray ? 1009 : 25;
      for (const row of res.rows || []) {
        const v = row[i];
        if (v === null || v === undefined) continue;
        if (isArray) {
          const arr = Array.isArray(v) ? v : parseArray(String(v));
          row[i] = arr.map(asText);
        } else {
          row[i] = asText(v);
        }
      }
    });
    return res;
  };
  const patchClient = (client) => {
    if (client.__bridgePatched) return client;
    const original = client.query.bind(client);
    client.query = (config, values, cb) => {
      if (typeof values === 'function' || typeof cb === 'function' || !config || config.rowMode !== 'array') {
        return original(config, values, cb);
      }
      refuseOverBindLimit(values);
      return original(withTextParsers(config), values).then(fixResult);
    };
    client.__bridgePatched = true;
    return client;
  };
  return class BridgePool extends pg.Pool {
    query(config, values, cb) {
      if (typeof values === 'function' || typeof cb === 'function' || !config || config.rowMode !== 'array') {
        return super.query(config, values, cb);
      }
      refuseOverBindLimit(values);
      return super.query(withTextParsers(config), values).then(fixResult);
    }
    connect(cb) {
      if (typeof cb === 'function') return super.connect(cb);
      return super.connect().then(patchClient);
    }
  };
}

// ------------------------------------------------------------------------------------------
// raw-query answer shape of the generated client

function detectRawFormat(dmlPath) {
  const forced = (process.env.HARNESS_PRISMA_RAW_FORMAT || '').toLowerCase();
  if (forced === 'legacy' || forced === 'columns') return forced;
  try {
    return rawFormatFromSource(readFileSync(path.join(path.dirname(dmlPath), '_raw_query.py'), 'utf8'));
  } catch {
    return 'legacy'; // not next to a generated client: assume prisma-client-py 0.11-0.13
  }
}

// ------------------------------------------------------------------------------------------
// engine lifecycle

async function startEngine(schemaText, dbUrl) {
  const { pool: poolOptions, schema } = parseDatabaseUrl(dbUrl);
  const [glue, index, pg, adapterPg, utils, postgresArray] = await Promise.all([
    loadQueryEngineModule(),
    loadTypeIndex(schemaText),
    import('pg').then((m) => m.default || m),
    import('@prisma/adapter-pg'),
    import('@prisma/driver-adapter-utils'),
    import('postgres-array'),
  ]);
  const BridgePool = installUnmappedTypeFallback(pg, postgresArray.parse);
  const pool = new BridgePool(poolOptions);
  pool.on('error', (e) => log(`harness bridge: idle postgres connection error: ${e.message}`));
  const adapter = utils.bindAdapter(new adapterPg.PrismaPg(pool, schema ? { schema } : undefined));
  const engine = new glue.QueryEngine(
    { datamodel: schemaText, logLevel: 'error', logQueries: false },
    (line) => {
      if (DEBUG) log(`engine: ${line}`);
    },
    adapter,
  );
  await engine.connect('{}');
  return { engine, pool, index, adapter, poolOptions };
}

// ------------------------------------------------------------------------------------------
// engine answers that need fixing up

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN']);

/**
 * The engine reports JS-side failures (e.g. the database is unreachable) as P2036 "Error in
 * external connector (id N)"; the real error waits in the adapter's registry. Put it in the
 * message, and use the native engine's P1001 for a database that cannot be reached.
 */
function resolveExternalErrors(value, ctx) {
  if (Array.isArray(value)) {
    value.forEach((v) => resolveExternalErrors(v, ctx));
    return value;
  }
  if (!value || typeof value !== 'object') return value;
  const ufe = value.user_facing_error || (value.error_code ? value : null);
  const rawId = ufe && ufe.error_code === 'P2036' && ufe.meta ? ufe.meta.id : undefined;
  const id = rawId instanceof RawNumber ? Number(rawId.text) : rawId;
  if (typeof id === 'number') {
    const found = ctx.adapter.errorRegistry.consumeError(id);
    const original = found && found.error;
    if (original) {
      const { host = 'localhost', port = 5432 } = ctx.poolOptions;
      let message;
      const refused = bindLimitError(original);
      if (refused) {
        ({ message } = refused);
        ufe.error_code = refused.error_code;
        ufe.meta = refused.meta;
      } else if (UNREACHABLE.has(original.code)) {
        message = `Can't reach database server at \`${host}\`:\`${port}\`\n\nPlease make sure your database server is running at \`${host}\`:\`${port}\`. (${original.message})`;
        ufe.error_code = 'P1001';
        ufe.meta = { database_host: String(host), database_port: String(port) };
      } else {
        message = `Error in external connector: ${original.message || original}`;
        ufe.meta = { ...ufe.meta, message: String(original.message || original) };
      }
      ufe.message = message;
      if (value.user_facing_error) value.error = message;
    }
  }
  for (const k of ['errors', 'batchResult']) if (value[k]) resolveExternalErrors(value[k], ctx);
  return value;
}

/** Transaction endpoints answer a bare error object; prisma-client-py reads `{errors: [...]}`. */
function transactionAnswer(text, ctx) {
  let parsed;
  try {
    parsed = JSON.parse(text || '{}');
  } catch {
    return errorBody(String(text));
  }
  if (parsed && parsed.error_code && !parsed.errors) {
    resolveExternalErrors(parsed, ctx);
    const base = (parsed.meta && typeof parsed.meta.error === 'string' && parsed.meta.error) || parsed.message;
    return { errors: [{ error: base, user_facing_error: parsed }] };
  }
  return resolveExternalErrors(parsed, ctx);
}

// The wasm engine panics (and its instance is lost) on a malformed transaction id, so only ids
// it issued are passed on; others get the native engine's "transaction not found" answer.
const KNOWN_TX_LIMIT = 10000;

function rememberTx(state, id) {
  state.knownTx.add(id);
  if (state.knownTx.size > KNOWN_TX_LIMIT) state.knownTx.delete(state.knownTx.values().next().value);
}

function unknownTx(id) {
  const message = `Transaction API error: Transaction not found. Transaction ID is invalid, refers to an old closed transaction Prisma doesn't have information about anymore, or was obtained before disconnecting.`;
  return {
    errors: [{ error: message, user_facing_error: { is_panic: false, message, meta: { error: `Transaction not found (${id})` }, error_code: 'P2028' } }],
  };
}

// ------------------------------------------------------------------------------------------
// HTTP

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res, status, body, type = 'application/json') {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function parseJsonBody(text) {
  if (!text.trim()) return {};
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new BridgeError(`request body is not JSON: ${e.message}`);
  }
}

function engineErrorBody(e) {
  const message = (e && e.message) || String(e);
  // the wasm engine throws JSON error bodies for some failures
  try {
    const parsed = JSON.parse(message);
    if (parsed && (parsed.errors || parsed.error)) return parsed.errors ? parsed : { errors: [parsed] };
  } catch {
    // plain message
  }
  return errorBody(message);
}

function makeHandler(state) {
  return async (req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    const route = url.pathname.replace(/\/+$/, '') || '/';
    try {
      if (req.method === 'GET' && route === '/status') return send(res, 200, { status: 'ok' });
      if (req.method === 'GET' && route === '/metrics') {
        // LiteLLM never reads Prisma metrics; the wasm engine keeps none. Serve an empty snapshot.
        if (url.searchParams.get('format') === 'prometheus') return send(res, 200, '', 'text/plain');
        return send(res, 200, { counters: [], gauges: [], histograms: [] });
      }
      if (req.method !== 'POST') return send(res, 404, errorBody(`no route ${req.method} ${route}`));

      const bodyText = await readBody(req);
      const ctx = await state.ready;
      const { engine, index } = ctx;
      const txHeader = req.headers['x-transaction-id'];
      const txId = Array.isArray(txHeader) ? txHeader[0] : txHeader || undefined;
      if (txId && !state.knownTx.has(txId)) return send(res, 200, unknownTx(txId));

      if (route === '/') {
        let translated;
        try {
          translated = translateRequest(parseJsonBody(bodyText), index);
        } catch (e) {
          if (e instanceof BridgeError) return send(res, 200, errorBody(e.message));
          throw e;
        }
        const t0 = DEBUG ? performance.now() : 0;
        if (DEBUG) log(`-> ${translated.text.slice(0, 2000)}${txId ? ` [tx ${txId}]` : ''}`);
        const answerText = await engine.query(translated.text, '{}', txId);
        if (DEBUG) log(`<- (${(performance.now() - t0).toFixed(1)} ms) ${answerText.slice(0, 2000)}`);
        const answer = resolveExternalErrors(parseLossless(answerText), ctx);
        return send(res, 200, stringify(translateAnswer(translated, answer, state.rawFormat)));
      }
      if (route === '/transaction/start') {
        const body = parseJsonBody(bodyText);
        const input = { max_wait: body.max_wait ?? 2000, timeout: body.timeout ?? 5000 };
        if (body.isolation_level) input.isolation_level = body.isolation_level;
        const answer = transactionAnswer(await engine.startTransaction(JSON.stringify(input), '{}'), ctx);
        if (answer && typeof answer.id === 'string') rememberTx(state, answer.id);
        return send(res, 200, answer);
      }
      const tx = /^\/transaction\/([^/]+)\/(commit|rollback)$/.exec(route);
      if (tx) {
        const id = decodeURIComponent(tx[1]);
        if (!state.knownTx.has(id)) return send(res, 200, unknownTx(id));
        const answer =
          tx[2] === 'commit' ? await engine.commitTransaction(id, '{}') : await engine.rollbackTransaction(id, '{}');
        return send(res, 200, transactionAnswer(answer, ctx));
      }
      return send(res, 404, errorBody(`no route ${req.method} ${route}`));
    } catch (e) {
      if (DEBUG) log(`harness bridge: ${e && e.stack}`);
      return send(res, 200, e instanceof BridgeError ? errorBody(e.message) : engineErrorBody(e));
    }
  };
}

// ------------------------------------------------------------------------------------------
// main

function watchParent(onGone) {
  // prisma-client-py does not give the engine a stdin pipe; watch the parent pid instead so
  // nothing is left running when the Python side is killed.
  const parent = process.ppid;
  if (!parent || parent === 1) return;
  const timer = setInterval(() => {
    let gone = process.ppid !== parent;
    if (!gone) {
      try {
        process.kill(parent, 0);
      } catch (e) {
        gone = e.code === 'ESRCH';
      }
    }
    if (gone) onGone();
  }, 250);
  timer.unref();
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.version) {
    const hash = process.env.PRISMA_EXPECTED_ENGINE_VERSION || DEFAULT_ENGINE_HASH;
    process.stdout.write(`query-engine ${hash}\n`);
    return;
  }
  const qeVersion = packageVersion('@prisma/query-engine-wasm').split('-')[0];
  log(`prisma wasm query engine ${qeVersion} (harness bridge, node ${process.version}, pid ${process.pid})`);

  const dmlPath = process.env.PRISMA_DML_PATH;
  if (!dmlPath) throw new BridgeError('PRISMA_DML_PATH is not set');
  const schemaText = readFileSync(dmlPath, 'utf8');
  const dbUrl = datasourceUrl(schemaText, process.env);

  // Listen first (prisma-client-py polls /status), then load the engine; queries wait for it.
  let startNow;
  const state = { ready: new Promise((resolve) => (startNow = resolve)).then(() => startEngine(schemaText, dbUrl)), rawFormat: detectRawFormat(dmlPath), knownTx: new Set() };
  state.ready.catch((e) => log(`harness bridge: engine start failed: ${(e && e.message) || e}`));

  const server = http.createServer(makeHandler(state));
  server.keepAliveTimeout = 60_000;

  let stopping = false;
  const shutdown = (code) => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(code), 1500).unref();
    server.close();
    server.closeAllConnections?.();
    state.ready
      .then(async ({ engine, pool }) => {
        await Promise.race([engine.disconnect('{}').catch(() => {}), new Promise((r) => setTimeout(r, 500))]);
        await Promise.race([pool.end().catch(() => {}), new Promise((r) => setTimeout(r, 500))]);
      })
      .catch(() => {})
      .finally(() => process.exit(code));
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => shutdown(0));
  process.on('uncaughtException', (e) => {
    // a wasm panic leaves the engine instance unusable: exit like a crashed native engine
    log(`harness bridge: the query engine crashed: ${(e && e.stack) || e}`);
    process.exit(1);
  });
  watchParent(() => {
    log('harness bridge: parent process is gone, exiting');
    shutdown(0);
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, '127.0.0.1', resolve);
  });
  setImmediate(startNow);
}

main().catch((e) => {
  log(`harness bridge: ${e instanceof BridgeError ? e.message : (e && e.stack) || e}`);
  process.exit(1);
});
