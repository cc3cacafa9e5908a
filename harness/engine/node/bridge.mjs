// placeholder: replaced by the real bridge shortly
const EXPECTED_HASH = 'ac9d7041ed77bcc8a8dbd2ab6616b39013829574';
if (process.argv.includes('--version')) { process.stdout.write(`query-engine ${EXPECTED_HASH}\n`); process.exit(0); }
process.stderr.write('bridge not implemented yet\n'); process.exit(1);
