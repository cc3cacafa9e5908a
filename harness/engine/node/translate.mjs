// Pure translation between prisma-client-py's query-engine protocol (GraphQL documents, the
// "graphql" engine protocol) and the JSON protocol spoken by @prisma/query-engine-wasm.
// No I/O here: bridge.mjs does the serving; test/translate.test.mjs covers this module.

// Only the parser: importing all of graphql costs ~150 ms at every engine start.
import { Kind } from 'graphql/language/kinds.mjs';
import { parse } from 'graphql/language/parser.mjs';

// ------------------------------------------------------------------------------------------
// numbers that must survive untouched (BigInt above 2^53, exact float text)

/** A numeric literal kept as its source text, emitted verbatim by `stringify`. */
export class RawNumber {
  constructor(text) {
    this.text = String(text);
  }
  isInteger() {
    return /^-?\d+$/.test(this.text);
  }
  toJSON() {
    // only reached through JSON.stringify (debug output); stringify() emits the raw text
    return Number(this.text);
  }
}

/**
 * JSON.parse that keeps every number as a RawNumber holding its exact text, so `10.0` stays a
 * float for Python and integers above 2^53 (e.g. inside raw Json columns) stay exact.
 */
export function parseLossless(text) {
  let i = 0;
  const n = text.length;
  const fail = (what) => {
    throw new SyntaxError(`invalid JSON from the engine (${what} at ${i})`);
  };
  const ws = () => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 32 || c === 10 || c === 13 || c === 9) i++;
      else return;
    }
  };
  const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  // The first backslash at or after a position, remembered: searching the rest of the text at
  // every string made a 33,000-row answer (8.8 MB) take two minutes instead of a fraction of a second.
  let nextBackslash = -2;
  const backslashFrom = (j) => {
    if (nextBackslash !== -1 && nextBackslash < j) nextBackslash = text.indexOf('\\', j);
    return nextBackslash;
  };
  const str = () => {
    const start = i; // at the opening quote
    let j = i + 1;
    let escaped = false;
    for (;;) {
      const q = text.indexOf('"', j);
      if (q < 0) fail('unterminated string');
      const bs = backslashFrom(j);
      if (bs >= 0 && bs < q) {
        escaped = true;
        j = bs + 2;
        continue;
      }
      i = q + 1;
      return escaped ? JSON.parse(text.slice(start, i)) : text.slice(start + 1, q);
    }
  };
  const value = () => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj = {};
      ws();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const k = str();
        ws();
        if (text[i++] !== ':') fail('expected :');
        Object.defineProperty(obj, k, { value: value(), enumerable: true, writable: true, configurable: true });
        ws();
        const d = text[i++];
        if (d === '}') return obj;
        if (d !== ',') fail('expected , or }');
      }
    }
    if (c === '[') {
      i++;
      const arr = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value());
        ws();
        const d = text[i++];
        if (d === ']') return arr;
        if (d !== ',') fail('expected , or ]');
      }
    }
    if (c === '"') return str();
    if (text.startsWith('true', i)) {
      i += 4;
      return true;
    }
    if (text.startsWith('false', i)) {
      i += 5;
      return false;
    }
    if (text.startsWith('null', i)) {
      i += 4;
      return null;
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) fail('unexpected character');
    i += m[0].length;
    return new RawNumber(m[0]);
  };
  const out = value();
  ws();
  if (i !== n) fail('trailing characters');
  return out;
}

/** JSON.stringify that writes RawNumber values as their exact text. */
export function stringify(value) {
  if (value === null || value === undefined) return 'null';
  if (value instanceof RawNumber) return value.text;
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return value.toString();
    default:
      break;
  }
  if (Array.isArray(value)) return '[' + value.map(stringify).join(',') + ']';
  const parts = [];
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue;
    parts.push(JSON.stringify(k) + ':' + stringify(v));
  }
  return '{' + parts.join(',') + '}';
}

// ------------------------------------------------------------------------------------------
// errors in the engine's shape

// The native engine (quaint) refuses a PostgreSQL statement with more than 32,767 bind variables
// before sending it; node-postgres would send up to 65,535 and PostgreSQL would run it. The bridge
// refuses too, so its answer is the native one (P2035), e.g. for a reset job that zeroes 33,000
// end users with one `user_id IN (...)` (upstream PR #40639).
export const BIND_LIMIT = 32767;

class BindLimitExceeded extends Error {
  constructor(received) {
    super(`too many bind variables in prepared statement, expected maximum of ${BIND_LIMIT}, received ${received}`);
    this.bindLimitExceeded = true;
  }
}

/** Throws (before anything is sent) when a statement's `values` exceed the native limit. */
export function refuseOverBindLimit(values) {
  if (Array.isArray(values) && values.length > BIND_LIMIT) throw new BindLimitExceeded(values.length);
}

/** The native engine's user-facing error for an error `refuseOverBindLimit` threw; null for any other. */
export function bindLimitError(error) {
  if (!error || !error.bindLimitExceeded) return null;
  return {
    error_code: 'P2035',
    message: `Assertion violation on the database: \`${error.message}\``,
    meta: { database_error: error.message },
  };
}

export class BridgeError extends Error {}

/** An error body prisma-client-py understands; with no code it raises prisma.errors.DataError. */
export function errorBody(message, code = null, meta = {}) {
  const userFacing = { is_panic: false, message, meta };
  if (code) userFacing.error_code = code;
  return { errors: [{ error: message, user_facing_error: userFacing }] };
}

// ------------------------------------------------------------------------------------------
// GraphQL request -> JSON protocol request

const MODEL_ACTIONS = [
  // longest first: createManyAndReturn must win over createMany
  'createManyAndReturn',
  'findUnique',
  'findFirst',
  'findMany',
  'createOne',
  'createMany',
  'updateOne',
  'updateMany',
  'upsertOne',
  'deleteOne',
  'deleteMany',
  'aggregate',
  'groupBy',
  'findRaw',
  'aggregateRaw',
];
const MODELLESS_ACTIONS = new Set(['executeRaw', 'queryRaw', 'runCommandRaw']);
export const RAW_ACTIONS = new Set(['executeRaw', 'queryRaw']);

/** `findUniqueLiteLLM_UserTableOrThrow` -> {action: 'findUniqueOrThrow', modelName: 'LiteLLM_UserTable'} */
export function splitRootField(name) {
  if (MODELLESS_ACTIONS.has(name)) return { action: name, modelName: undefined };
  let base = name;
  let suffix = '';
  if (name.endsWith('OrThrow')) {
    base = name.slice(0, -'OrThrow'.length);
    suffix = 'OrThrow';
  }
  for (const prefix of MODEL_ACTIONS) {
    if (base.startsWith(prefix) && base.length > prefix.length) {
      if (suffix && prefix !== 'findUnique' && prefix !== 'findFirst') break;
      return { action: prefix + suffix, modelName: base.slice(prefix.length) };
    }
  }
  throw new BridgeError(`unsupported query-engine operation \`${name}\``);
}

function valueToJs(node) {
  switch (node.kind) {
    case Kind.STRING:
      return node.value;
    case Kind.INT:
    case Kind.FLOAT:
      return new RawNumber(node.value);
    case Kind.BOOLEAN:
      return node.value;
    case Kind.NULL:
      return null;
    case Kind.ENUM:
      return node.value;
    case Kind.LIST:
      return node.values.map(valueToJs);
    case Kind.OBJECT: {
      const out = {};
      for (const f of node.fields) {
        Object.defineProperty(out, f.name.value, {
          value: valueToJs(f.value), enumerable: true, writable: true, configurable: true,
        });
      }
      return out;
    }
    default:
      throw new BridgeError(`unsupported GraphQL value of kind ${node.kind} (variables are not supported)`);
  }
}

function argumentsToJs(args) {
  const out = {};
  for (const a of args || []) out[a.name.value] = valueToJs(a.value);
  return out;
}

function selectionToJs(selectionSet) {
  const out = {};
  for (const sel of selectionSet.selections) {
    if (sel.kind !== Kind.FIELD) {
      throw new BridgeError(`unsupported GraphQL selection of kind ${sel.kind}`);
    }
    const name = sel.name.value;
    const hasArgs = sel.arguments && sel.arguments.length > 0;
    if (!sel.selectionSet && !hasArgs) {
      out[name] = true;
      continue;
    }
    const nested = {};
    if (hasArgs) nested.arguments = argumentsToJs(sel.arguments);
    nested.selection = sel.selectionSet ? selectionToJs(sel.selectionSet) : { $scalars: true };
    out[name] = nested;
  }
  return out;
}

/**
 * Parse one prisma-client-py GraphQL document (`query { result: findManyX(...) { a b } }`).
 * Returns {rootField, action, modelName, arguments, selection}; arguments keep numbers as RawNumber.
 */
export function parseGraphQLQuery(text) {
  let doc;
  try {
    doc = parse(text, { noLocation: true });
  } catch (e) {
    throw new BridgeError(`could not parse the query document: ${e.message}`);
  }
  const op = doc.definitions.find((d) => d.kind === Kind.OPERATION_DEFINITION);
  if (!op) throw new BridgeError('the query document has no operation');
  const fields = op.selectionSet.selections;
  if (fields.length !== 1 || fields[0].kind !== Kind.FIELD) {
    throw new BridgeError(`expected exactly one root field, got ${fields.length}`);
  }
  const field = fields[0];
  const rootField = field.name.value;
  const { action, modelName } = splitRootField(rootField);
  return {
    rootField,
    action,
    modelName,
    arguments: argumentsToJs(field.arguments),
    selection: field.selectionSet ? selectionToJs(field.selectionSet) : {},
  };
}

// ------------------------------------------------------------------------------------------
// the DMMF, reduced to what argument tagging needs

const TAGGED_SCALARS = new Set(['Json', 'BigInt', 'DateTime', 'Decimal', 'Bytes']);

function compactRefs(inputTypes) {
  const refs = [];
  for (const t of inputTypes || []) {
    if (t.location === 'scalar' && TAGGED_SCALARS.has(t.type)) refs.push(['s', t.type]);
    else if (t.location === 'inputObjectTypes') refs.push(['i', t.type]);
  }
  return refs;
}

function compactArgs(args) {
  const out = {};
  for (const a of args || []) {
    const refs = compactRefs(a.inputTypes);
    if (refs.length) out[a.name] = refs;
  }
  return out;
}

function outputName(t) {
  return t && t.location === 'outputObjectTypes' ? t.type : null;
}

/**
 * Reduce a DMMF (from @prisma/prisma-schema-wasm get_dmmf) to
 * {roots: {field: {args, out}}, inputs: {type: {field: refs}}, outputs: {type: {field: {args, out}}}}
 * where refs are [['s', scalar] | ['i', inputType]] — only the kinds tagging cares about.
 */
export function buildTypeIndex(dmmf) {
  const schema = dmmf.schema;
  const index = { roots: {}, inputs: {}, outputs: {} };
  for (const ns of Object.values(schema.inputObjectTypes || {})) {
    for (const type of ns) {
      const fields = {};
      for (const f of type.fields) {
        const refs = compactRefs(f.inputTypes);
        if (refs.length) fields[f.name] = refs;
      }
      index.inputs[type.name] = fields;
    }
  }
  for (const ns of Object.values(schema.outputObjectTypes || {})) {
    for (const type of ns) {
      const isRoot = type.name === 'Query' || type.name === 'Mutation';
      const fields = {};
      for (const f of type.fields) {
        const entry = { args: compactArgs(f.args), out: outputName(f.outputType) };
        if (isRoot) index.roots[f.name] = entry;
        else if (entry.out || Object.keys(entry.args).length) fields[f.name] = entry;
      }
      if (!isRoot) index.outputs[type.name] = fields;
    }
  }
  return index;
}

// ------------------------------------------------------------------------------------------
// argument tagging: the JSON protocol needs typed values where the GraphQL protocol took strings

function hasScalar(refs, name) {
  return refs.some((r) => r[0] === 's' && r[1] === name);
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof RawNumber);
}

function tagValue(value, refs, index) {
  if (value === null || value === undefined || !refs || refs.length === 0) return value;
  if (Array.isArray(value)) return value.map((v) => tagValue(v, refs, index));
  if (isPlainObject(value)) {
    const objectTypes = refs.filter((r) => r[0] === 'i').map((r) => index.inputs[r[1]]).filter(Boolean);
    if (objectTypes.length) {
      const out = {};
      for (const [k, v] of Object.entries(value)) {
        const fieldRefs = [];
        for (const t of objectTypes) if (t[k]) fieldRefs.push(...t[k]);
        out[k] = tagValue(v, fieldRefs, index);
      }
      return out;
    }
    if (hasScalar(refs, 'Json')) return { $type: 'Json', value: stringify(value) };
    return value;
  }
  if (typeof value === 'string') {
    if (hasScalar(refs, 'Json')) return { $type: 'Json', value };
    if (hasScalar(refs, 'DateTime')) return { $type: 'DateTime', value };
    if (hasScalar(refs, 'BigInt') && /^-?\d+$/.test(value)) return { $type: 'BigInt', value };
    if (hasScalar(refs, 'Decimal')) return { $type: 'Decimal', value };
    if (hasScalar(refs, 'Bytes')) return { $type: 'Bytes', value };
    return value;
  }
  if (value instanceof RawNumber) {
    if (hasScalar(refs, 'BigInt') && value.isInteger()) return { $type: 'BigInt', value: value.text };
    if (hasScalar(refs, 'Decimal')) return { $type: 'Decimal', value: value.text };
    if (hasScalar(refs, 'Json')) return { $type: 'Json', value: value.text };
    return value;
  }
  if (typeof value === 'boolean' && hasScalar(refs, 'Json')) return { $type: 'Json', value: String(value) };
  return value;
}

function tagArguments(args, argRefs, index) {
  const out = {};
  for (const [k, v] of Object.entries(args)) out[k] = tagValue(v, argRefs ? argRefs[k] : undefined, index);
  return out;
}

function tagSelection(selection, outType, index) {
  const fields = (outType && index.outputs[outType]) || {};
  const out = {};
  for (const [k, v] of Object.entries(selection)) {
    if (!isPlainObject(v)) {
      out[k] = v;
      continue;
    }
    const f = fields[k];
    const nested = {};
    if (v.arguments) nested.arguments = tagArguments(v.arguments, f && f.args, index);
    nested.selection = v.selection ? tagSelection(v.selection, f && f.out, index) : v.selection;
    out[k] = nested;
  }
  return out;
}

/**
 * Turn a parsed GraphQL request into a JSON-protocol query object. `index` (buildTypeIndex) may be
 * null, in which case no tagging happens (fine for raw queries, wrong for Json columns).
 * Raw-query parameters stay an untagged JSON string, as the engine expects.
 */
export function toJsonProtocol(parsed, index) {
  let args = parsed.arguments;
  let selection = parsed.selection;
  if (index && !RAW_ACTIONS.has(parsed.action)) {
    const root = index.roots[parsed.rootField] || index.roots[parsed.rootField.replace(/OrThrow$/, '')];
    args = tagArguments(args, root && root.args, index);
    selection = tagSelection(selection, root && root.out, index);
  }
  const query = { arguments: args, selection };
  const out = { action: parsed.action, query };
  if (parsed.modelName) out.modelName = parsed.modelName;
  return out;
}

/** Translate one native-protocol request body ({query, variables} or {batch, transaction}). */
export function translateRequest(body, index) {
  if (body && Array.isArray(body.batch)) {
    const parsed = body.batch.map((item) => parseGraphQLQuery(item && item.query));
    const batch = parsed.map((p) => toJsonProtocol(p, index));
    const out = { batch, ...(body.transaction ? { transaction: {} } : {}) };
    return { kind: 'batch', text: stringify(out), actions: parsed.map((p) => p.action) };
  }
  if (!body || typeof body.query !== 'string') throw new BridgeError('request has neither `query` nor `batch`');
  const parsed = parseGraphQLQuery(body.query);
  return { kind: 'single', text: stringify(toJsonProtocol(parsed, index)), actions: [parsed.action] };
}

// ------------------------------------------------------------------------------------------
// JSON protocol answer -> native answer

/** Replace every tagged value ({$type, value}) by its plain value: DateTime/BigInt/Decimal/Json -> string. */
export function unwrapTagged(value) {
  if (Array.isArray(value)) return value.map(unwrapTagged);
  if (value !== null && typeof value === 'object' && !(value instanceof RawNumber)) {
    const keys = Object.keys(value);
    if (keys.length === 2 && typeof value.$type === 'string' && 'value' in value) return value.value;
    const out = {};
    for (const k of keys) out[k] = unwrapTagged(value[k]);
    return out;
  }
  return value;
}

function legacyCell(type, v) {
  if (v === null || v === undefined) return { prisma__type: 'null', prisma__value: null };
  if (type.endsWith('-array') && Array.isArray(v)) {
    const item = type.slice(0, -'-array'.length);
    return { prisma__type: 'array', prisma__value: v.map((e) => legacyCell(item, e)) };
  }
  return { prisma__type: type, prisma__value: v };
}

/** {columns, types, rows} -> [{column: {prisma__type, prisma__value}}] (prisma-client-py before the columns format). */
export function rawToLegacy(raw) {
  if (!raw || !Array.isArray(raw.columns)) return raw;
  return raw.rows.map((row) => {
    const obj = {};
    raw.columns.forEach((c, i) => {
      obj[c] = legacyCell(raw.types[i] || 'string', row[i]);
    });
    return obj;
  });
}

function convertResult(action, result, rawFormat) {
  if (action === 'queryRaw') return rawFormat === 'legacy' ? rawToLegacy(result) : result;
  if (action === 'executeRaw') return result;
  return unwrapTagged(result);
}

function convertOne(action, answer, rawFormat) {
  if (!answer || answer.errors || !answer.data) return answer;
  const values = Object.values(answer.data);
  return { data: { result: convertResult(action, values.length ? values[0] : null, rawFormat) } };
}

/** Convert the wasm engine's answer (already JSON.parsed) to what prisma-client-py expects. */
export function translateAnswer(translated, answer, rawFormat = 'legacy') {
  if (translated.kind === 'batch') {
    if (!answer || !Array.isArray(answer.batchResult)) return answer;
    return {
      batchResult: answer.batchResult.map((item, i) => convertOne(translated.actions[i], item, rawFormat)),
    };
  }
  return convertOne(translated.actions[0], answer, rawFormat);
}

/**
 * Which raw-query answer the generated client parses, read from its `_raw_query.py`:
 * prisma-client-py 0.11-0.13 read rows of {column: {prisma__type, prisma__value}} ('legacy'),
 * 0.14+ read {columns, types, rows} ('columns').
 */
export function rawFormatFromSource(src) {
  if (src.includes('prisma__value')) return 'legacy';
  if (src.includes("['columns']") || src.includes('["columns"]')) return 'columns';
  return 'legacy';
}

// ------------------------------------------------------------------------------------------
// configuration helpers

function stripLineComment(line) {
  let inString = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (inString && c === '\\') i++;
    else if (c === '"') inString = !inString;
    else if (!inString && c === '/' && line[i + 1] === '/') return line.slice(0, i);
  }
  return line;
}

/** The datasource URL: OVERWRITE_DATASOURCES (JSON list) first, then the schema's url (literal or env()). */
export function datasourceUrl(schemaText, env) {
  if (env.OVERWRITE_DATASOURCES) {
    let list;
    try {
      list = JSON.parse(env.OVERWRITE_DATASOURCES);
    } catch (e) {
      throw new BridgeError(`OVERWRITE_DATASOURCES is not valid JSON: ${e.message}`);
    }
    const first = Array.isArray(list) ? list.find((d) => d && d.url) : list && list.url ? list : null;
    if (first) return first.url;
  }
  const block = /datasource\s+\w+\s*\{([\s\S]*?)\}/.exec(schemaText || '');
  if (!block) throw new BridgeError('the schema has no datasource block');
  const body = block[1].split('\n').map(stripLineComment).join('\n');
  const fromEnv = /\burl\s*=\s*env\(\s*"([^"]+)"\s*\)/.exec(body);
  if (fromEnv) {
    const v = env[fromEnv[1]];
    if (!v) throw new BridgeError(`environment variable ${fromEnv[1]} (the datasource url) is not set`);
    return v;
  }
  const literal = /\burl\s*=\s*"([^"]+)"/.exec(body);
  if (literal) return literal[1];
  throw new BridgeError('the datasource block has no url');
}

/**
 * A postgres:// URL (Prisma conventions) -> {pool: pg.Pool options, schema}.
 * Supports `?host=/socket/dir`, `schema`, `connection_limit`, `pool_timeout`, `connect_timeout`,
 * `sslmode`, `application_name`; other Prisma-only parameters are ignored.
 */
export function parseDatabaseUrl(url) {
  // Not WHATWG URL: it rejects `postgresql://user:@/db?host=/socket/dir` (credentials, no host).
  const m = /^(postgres(?:ql)?):\/\/(?:([^@/?#]*)@)?([^/?#]*)(?:\/([^?#]*))?(?:\?([^#]*))?/.exec(String(url || ''));
  if (!m) {
    const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(String(url || ''));
    if (scheme && !/^postgres(ql)?$/i.test(scheme[1])) {
      throw new BridgeError(`only postgresql:// datasource urls are supported (got ${scheme[1]}:)`);
    }
    throw new BridgeError('the datasource url is not a valid postgresql:// URL');
  }
  const [, , userinfo, hostport, dbpath, query] = m;
  const dec = (s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  let username = '';
  let password = '';
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    username = colon >= 0 ? userinfo.slice(0, colon) : userinfo;
    password = colon >= 0 ? userinfo.slice(colon + 1) : '';
  }
  const firstHost = (hostport || '').split(',')[0];
  const hp = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(firstHost) || [firstHost, firstHost, undefined];
  const u = {
    username,
    password,
    hostname: hp[1] || '',
    port: hp[2] || '',
    pathname: dbpath || '',
    searchParams: new URLSearchParams(query || ''),
  };
  const q = u.searchParams;
  const pool = {};
  if (u.username) pool.user = dec(u.username);
  if (u.password) pool.password = dec(u.password);
  const hostParam = q.get('host');
  if (hostParam) pool.host = hostParam;
  else if (u.hostname) pool.host = dec(u.hostname).replace(/^\[(.*)\]$/, '$1');
  if (u.port) pool.port = Number(u.port);
  const db = dec(u.pathname);
  if (db) pool.database = db;
  const schema = q.get('schema') || undefined;
  if (q.get('connection_limit')) pool.max = Math.max(1, Number(q.get('connection_limit')) || 10);
  const poolTimeout = q.get('pool_timeout');
  if (poolTimeout && Number(poolTimeout) > 0) pool.connectionTimeoutMillis = Number(poolTimeout) * 1000;
  const connectTimeout = q.get('connect_timeout');
  if (connectTimeout && Number(connectTimeout) > 0 && !pool.connectionTimeoutMillis) {
    pool.connectionTimeoutMillis = Number(connectTimeout) * 1000;
  }
  const app = q.get('application_name');
  if (app) pool.application_name = app;
  const sslmode = q.get('sslmode');
  if (sslmode === 'require' || sslmode === 'verify-ca' || sslmode === 'verify-full') {
    pool.ssl = sslmode === 'verify-full' || sslmode === 'verify-ca' ? {} : { rejectUnauthorized: false };
  }
  if (schema) pool.options = `-c search_path="${schema.replace(/"/g, '""')}"`;
  return { pool, schema };
}
