// Unit tests of the pure protocol translation (node --test). tests/test_bridge_unit.py runs them
// with BRIDGE_DIR pointing at a built engine directory (one with node_modules).
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = process.env.BRIDGE_DIR || path.join(here, '..');
const t = await import(pathToFileURL(path.join(dir, 'translate.mjs')).href);

// A DMMF fragment shaped like @prisma/prisma-schema-wasm's get_dmmf output.
const scalar = (type, isList = false) => ({ type, location: 'scalar', isList });
const input = (type, isList = false) => ({ type, namespace: 'prisma', location: 'inputObjectTypes', isList });
const output = (type, isList = false) => ({ type, namespace: 'model', location: 'outputObjectTypes', isList });
const DMMF = {
  schema: {
    inputObjectTypes: {
      prisma: [
        {
          name: 'KeyCreateInput',
          fields: [
            { name: 'token', inputTypes: [scalar('String')] },
            { name: 'metadata', inputTypes: [{ type: 'JsonNullValueInput', location: 'enumTypes' }, scalar('Json')] },
            { name: 'tpm_limit', inputTypes: [scalar('BigInt'), scalar('Null')] },
            { name: 'expires', inputTypes: [scalar('DateTime'), scalar('Null')] },
            { name: 'models', inputTypes: [scalar('String', true)] },
          ],
        },
        {
          name: 'KeyUpdateInput',
          fields: [
            { name: 'spend', inputTypes: [scalar('Float'), input('FloatOps')] },
            { name: 'tpm_limit', inputTypes: [scalar('BigInt'), input('BigIntOps')] },
          ],
        },
        { name: 'FloatOps', fields: [{ name: 'increment', inputTypes: [scalar('Float')] }] },
        { name: 'BigIntOps', fields: [{ name: 'increment', inputTypes: [scalar('BigInt')] }] },
        {
          name: 'KeyWhereInput',
          fields: [
            { name: 'token', inputTypes: [scalar('String')] },
            { name: 'tpm_limit', inputTypes: [scalar('BigInt'), input('BigIntFilter')] },
            { name: 'OR', inputTypes: [input('KeyWhereInput', true)] },
          ],
        },
        { name: 'BigIntFilter', fields: [{ name: 'gt', inputTypes: [scalar('BigInt')] }] },
        { name: 'KeyWhereUniqueInput', fields: [{ name: 'token', inputTypes: [scalar('String')] }] },
      ],
    },
    outputObjectTypes: {
      prisma: [
        {
          name: 'Query',
          fields: [
            {
              name: 'findManyKey',
              args: [{ name: 'where', inputTypes: [input('KeyWhereInput')] }, { name: 'take', inputTypes: [scalar('Int')] }],
              outputType: output('Key', true),
            },
            { name: 'findUniqueBudgetOrThrow', args: [], outputType: output('Budget') },
          ],
        },
        {
          name: 'Mutation',
          fields: [
            { name: 'createOneKey', args: [{ name: 'data', inputTypes: [input('KeyCreateInput')] }], outputType: output('Key') },
            {
              name: 'updateOneKey',
              args: [{ name: 'data', inputTypes: [input('KeyUpdateInput')] }, { name: 'where', inputTypes: [input('KeyWhereUniqueInput')] }],
              outputType: output('Key'),
            },
            { name: 'queryRaw', args: [{ name: 'query', inputTypes: [scalar('String')] }, { name: 'parameters', inputTypes: [scalar('Json')] }], outputType: scalar('Json') },
          ],
        },
      ],
      model: [
        { name: 'Key', fields: [{ name: 'token', args: [], outputType: scalar('String') }] },
        {
          name: 'Budget',
          fields: [{ name: 'keys', args: [{ name: 'where', inputTypes: [input('KeyWhereInput')] }], outputType: output('Key', true) }],
        },
      ],
    },
  },
};
const INDEX = t.buildTypeIndex(DMMF);

function translate(query, index = INDEX) {
  return JSON.parse(t.stringify(t.toJsonProtocol(t.parseGraphQLQuery(query), index)));
}

test('root field names split into action and model, OrThrow kept on the action', () => {
  assert.deepEqual(t.splitRootField('findUniqueLiteLLM_UserTableOrThrow'), { action: 'findUniqueOrThrow', modelName: 'LiteLLM_UserTable' });
  assert.deepEqual(t.splitRootField('findFirstXOrThrow'), { action: 'findFirstOrThrow', modelName: 'X' });
  assert.deepEqual(t.splitRootField('createManyLiteLLM_SpendLogs'), { action: 'createMany', modelName: 'LiteLLM_SpendLogs' });
  assert.deepEqual(t.splitRootField('createManyAndReturnX'), { action: 'createManyAndReturn', modelName: 'X' });
  assert.deepEqual(t.splitRootField('aggregateX'), { action: 'aggregate', modelName: 'X' });
  assert.deepEqual(t.splitRootField('groupByX'), { action: 'groupBy', modelName: 'X' });
  assert.deepEqual(t.splitRootField('upsertOneX'), { action: 'upsertOne', modelName: 'X' });
  assert.deepEqual(t.splitRootField('executeRaw'), { action: 'executeRaw', modelName: undefined });
  assert.deepEqual(t.splitRootField('queryRaw'), { action: 'queryRaw', modelName: undefined });
  assert.throws(() => t.splitRootField('deleteOneXOrThrow'), t.BridgeError);
  assert.throws(() => t.splitRootField('frobnicate'), t.BridgeError);
});

test('a prisma-client-py document becomes a JSON-protocol query with nested selections', () => {
  const doc = `query {
  result: findManyKey
  (
    where: {
      token: "a \\"quoted\\" é"
      OR: [
        {
          tpm_limit: 9007199254740993
        },
        {
          tpm_limit: { gt: 1 }
        }
      ]
    }
    take: 2
  )
  {
    token
    spend
    budget {
      budget_id
    }
    keys(where: { token: "x" }) {
      token
    }
  }
}`;
  const q = translate(doc, null);
  assert.equal(q.action, 'findMany');
  assert.equal(q.modelName, 'Key');
  assert.equal(q.query.arguments.where.token, 'a "quoted" é');
  assert.equal(q.query.arguments.take, 2);
  assert.deepEqual(q.query.selection, {
    token: true,
    spend: true,
    budget: { selection: { budget_id: true } },
    keys: { arguments: { where: { token: 'x' } }, selection: { token: true } },
  });
  // without a type index nothing is tagged, but big integers stay exact in the text
  const text = t.stringify(t.toJsonProtocol(t.parseGraphQLQuery(doc), null));
  assert.match(text, /"tpm_limit":9007199254740993/);
});

test('Json, BigInt and DateTime arguments are tagged from the schema; other values are not', () => {
  const q = translate(`mutation {
  result: createOneKey(data: {token: "k", metadata: "{\\"a\\": [1, 2]}", tpm_limit: 9007199254740993, expires: "2030-01-02T03:04:05.678+00:00", models: ["m"]}) { token }
}`);
  assert.equal(q.action, 'createOne');
  assert.deepEqual(q.query.arguments.data, {
    token: 'k',
    metadata: { $type: 'Json', value: '{"a": [1, 2]}' },
    tpm_limit: { $type: 'BigInt', value: '9007199254740993' },
    expires: { $type: 'DateTime', value: '2030-01-02T03:04:05.678+00:00' },
    models: ['m'],
  });
});

test('tagging follows unions, nested operation inputs, lists of inputs and filters', () => {
  const upd = translate('mutation { result: updateOneKey(where: {token: "k"}, data: {spend: {increment: 0.25}, tpm_limit: {increment: 2}}) { token } }');
  assert.deepEqual(upd.query.arguments.data, { spend: { increment: 0.25 }, tpm_limit: { increment: { $type: 'BigInt', value: '2' } } });
  const find = translate('query { result: findManyKey(where: {OR: [{tpm_limit: 5}, {tpm_limit: {gt: 6}}]}) { token } }');
  assert.deepEqual(find.query.arguments.where.OR, [
    { tpm_limit: { $type: 'BigInt', value: '5' } },
    { tpm_limit: { gt: { $type: 'BigInt', value: '6' } } },
  ]);
});

test('arguments of included relations are tagged through the output types', () => {
  const q = translate('query { result: findUniqueBudgetOrThrow { budget_id keys(where: {tpm_limit: 7}) { token } } }');
  assert.equal(q.action, 'findUniqueOrThrow');
  assert.equal(q.modelName, 'Budget');
  assert.deepEqual(q.query.selection.keys.arguments, { where: { tpm_limit: { $type: 'BigInt', value: '7' } } });
});

test('raw query parameters stay an untagged JSON string', () => {
  const q = translate('mutation { result: queryRaw(query: "SELECT $1", parameters: "[\\"x\\", 9007199254740993]") }');
  assert.equal(q.action, 'queryRaw');
  assert.equal(q.modelName, undefined);
  assert.deepEqual(q.query, { arguments: { query: 'SELECT $1', parameters: '["x", 9007199254740993]' }, selection: {} });
});

test('aggregate selections (count, group by) keep their nesting', () => {
  const q = translate('query { result: aggregateKey(where: {token: "k"}) { _count { _all } } }', null);
  assert.deepEqual(q.query.selection, { _count: { selection: { _all: true } } });
  const g = translate('query { result: groupByKey(by: ["budget_id"]) { budget_id _sum { spend } _count { _all } } }', null);
  assert.deepEqual(g.query.arguments, { by: ['budget_id'] });
  assert.deepEqual(g.query.selection, { budget_id: true, _sum: { selection: { spend: true } }, _count: { selection: { _all: true } } });
});

test('batches translate item by item; transaction true becomes a transaction object', () => {
  const body = {
    batch: [
      { query: 'mutation { result: createOneKey(data: {token: "a", tpm_limit: 3}) { token } }', variables: {} },
      { query: 'mutation { result: executeRaw(query: "SELECT 1", parameters: "[]") }', variables: {} },
    ],
    transaction: true,
  };
  const tr = t.translateRequest(body, INDEX);
  assert.equal(tr.kind, 'batch');
  assert.deepEqual(tr.actions, ['createOne', 'executeRaw']);
  const sent = JSON.parse(tr.text);
  assert.deepEqual(sent.transaction, {});
  assert.deepEqual(sent.batch[0].query.arguments.data.tpm_limit, { $type: 'BigInt', value: '3' });
  const answer = { batchResult: [{ data: { createOneKey: { token: 'a' } } }, { data: { executeRaw: 1 } }] };
  assert.deepEqual(t.translateAnswer(tr, answer), { batchResult: [{ data: { result: { token: 'a' } } }, { data: { result: 1 } }] });
  assert.throws(() => t.translateRequest({ nothing: 1 }, INDEX), t.BridgeError);
});

test('answers: tagged values unwrapped, numbers kept exactly, errors passed through', () => {
  const tr = t.translateRequest({ query: 'query { result: findManyKey { token } }' }, INDEX);
  const text =
    '{"data":{"findManyKey":[{"token":"k","spend":10.0,"tpm_limit":{"$type":"BigInt","value":"9007199254740993"},' +
    '"metadata":{"$type":"Json","value":"{\\"a\\":1}"},"expires":{"$type":"DateTime","value":"2030-01-02T03:04:05.678Z"}}]}}';
  const out = t.stringify(t.translateAnswer(tr, t.parseLossless(text)));
  assert.equal(
    out,
    '{"data":{"result":[{"token":"k","spend":10.0,"tpm_limit":"9007199254740993","metadata":"{\\"a\\":1}","expires":"2030-01-02T03:04:05.678Z"}]}}',
  );
  const err = { errors: [{ error: 'x', user_facing_error: { error_code: 'P2002', message: 'x', meta: {} } }] };
  assert.deepEqual(t.translateAnswer(tr, err), err);
});

test('raw results: columns format or the legacy prisma__type/prisma__value rows', () => {
  const tr = t.translateRequest({ query: 'mutation { result: queryRaw(query: "q", parameters: "[]") }' }, INDEX);
  const text =
    '{"data":{"queryRaw":{"columns":["n","big","arr","j","z"],"types":["int","bigint","string-array","json","int"],' +
    '"rows":[[1,"9007199254740993",["a",null],{"deep":123456789012345678},null]]}}}';
  const legacy = t.stringify(t.translateAnswer(tr, t.parseLossless(text), 'legacy'));
  assert.equal(
    legacy,
    '{"data":{"result":[{"n":{"prisma__type":"int","prisma__value":1},' +
      '"big":{"prisma__type":"bigint","prisma__value":"9007199254740993"},' +
      '"arr":{"prisma__type":"array","prisma__value":[{"prisma__type":"string","prisma__value":"a"},{"prisma__type":"null","prisma__value":null}]},' +
      '"j":{"prisma__type":"json","prisma__value":{"deep":123456789012345678}},' +
      '"z":{"prisma__type":"null","prisma__value":null}}]}}',
  );
  const columns = t.stringify(t.translateAnswer(tr, t.parseLossless(text), 'columns'));
  assert.equal(columns, text.replace('"queryRaw"', '"result"'));
});

test('stringify / parseLossless round trip', () => {
  const text = '{"a":[1,-2.50,3e-7,1E+21,true,false,null,"x\\"y\\\\z\\u00e9\\n"],"b":{},"c":[],"__proto__":{"p":1}}';
  const v = t.parseLossless(text);
  assert.equal(t.stringify(v), text.replace('\\u00e9', 'é'));
  assert.equal(Object.getPrototypeOf(v), Object.prototype);
  assert.throws(() => t.parseLossless('{"a":1'), SyntaxError);
  assert.throws(() => t.parseLossless('[1] x'), SyntaxError);
});

test('datasource url: OVERWRITE_DATASOURCES first, then env() or a literal', () => {
  const schema = 'datasource client {\n  provider = "postgresql"\n  // url = "commented"\n  url = env("DATABASE_URL")\n}\n';
  assert.equal(t.datasourceUrl(schema, { DATABASE_URL: 'postgresql://a/b' }), 'postgresql://a/b');
  assert.equal(
    t.datasourceUrl(schema, { DATABASE_URL: 'postgresql://a/b', OVERWRITE_DATASOURCES: '[{"name":"client","url":"postgresql://c/d"}]' }),
    'postgresql://c/d',
  );
  assert.equal(t.datasourceUrl('datasource db {\n url = "postgresql://lit/x"\n}', {}), 'postgresql://lit/x');
  assert.throws(() => t.datasourceUrl(schema, {}), /DATABASE_URL/);
});

test('database urls: unix-socket host, tcp, schema and pool parameters', () => {
  assert.deepEqual(t.parseDatabaseUrl('postgresql://postgres:@/db1?host=/tmp/pg sock'), {
    pool: { user: 'postgres', host: '/tmp/pg sock', database: 'db1' },
    schema: undefined,
  });
  assert.deepEqual(t.parseDatabaseUrl('postgres://u:p%40ss@127.0.0.1:5433/d%20b?schema=s1&connection_limit=5&pool_timeout=10'), {
    pool: { user: 'u', password: 'p@ss', host: '127.0.0.1', port: 5433, database: 'd b', max: 5, connectionTimeoutMillis: 10000, options: '-c search_path="s1"' },
    schema: 's1',
  });
  assert.deepEqual(t.parseDatabaseUrl('postgresql://[::1]:5432/x').pool, { host: '::1', port: 5432, database: 'x' });
  assert.throws(() => t.parseDatabaseUrl('mysql://x/y'), /only postgresql/);
});

test('raw answer format detected from the generated client source', () => {
  assert.equal(t.rawFormatFromSource("value = raw_value['prisma__value']"), 'legacy'); // 0.11-0.13
  assert.equal(t.rawFormatFromSource("columns=raw_result['columns'],"), 'columns'); // 0.14+
  assert.equal(t.rawFormatFromSource(''), 'legacy');
});

test('bind variables: up to 32,767 pass; more are refused with the native engine\'s P2035', () => {
  assert.doesNotThrow(() => t.refuseOverBindLimit(new Array(t.BIND_LIMIT).fill(0)));
  assert.doesNotThrow(() => t.refuseOverBindLimit(undefined));
  let thrown;
  try {
    t.refuseOverBindLimit(new Array(33001).fill('x'));
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown, 'a statement with 33,001 values must be refused');
  assert.deepEqual(t.bindLimitError(thrown), {
    error_code: 'P2035',
    message: 'Assertion violation on the database: `too many bind variables in prepared statement, expected maximum of 32767, received 33001`',
    meta: { database_error: 'too many bind variables in prepared statement, expected maximum of 32767, received 33001' },
  });
  assert.equal(t.bindLimitError(new Error('other')), null);
});

test('lossless parse: strings with and without escapes, anywhere in a long answer', () => {
  const rows = [];
  for (let i = 0; i < 2000; i++) {
    rows.push({ id: `u${i}`, note: i % 7 === 0 ? `a "quoted" \\ back\\slash\nline ${i}` : `plain ${i}`, tail: i % 500 === 0 ? '\\' : 'x' });
  }
  const text = JSON.stringify({ data: { result: rows }, last: 'no escape after the final backslash' });
  const parsed = t.parseLossless(text);
  assert.deepEqual(JSON.parse(t.stringify(parsed)), JSON.parse(text));
  assert.equal(t.parseLossless('"\\u00e9t\\u00e9"'), 'été');
  assert.equal(t.parseLossless('["a\\"b", "c"]')[1], 'c');
});
