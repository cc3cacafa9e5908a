// The scenario's clock in the Prisma engine: values the engine makes itself (`@default(now())`,
// `@updatedAt`) follow the proxy's frozen clock instead of the real one.
//
// The proxy's agent (harness/standalone/agent.py) writes the frozen instant to HARNESS_CLOCK_FILE
// on every freeze and advance, and removes it when the clock runs again. The wasm engine's
// glue calls the global `Date` at call time (`new Date()`, `Date.now()`), so replacing it here,
// before the engine loads, is enough. The file is re-read whenever it changes (one stat per call).
import { readFileSync, statSync } from 'node:fs';

const FILE = process.env.HARNESS_CLOCK_FILE;

if (FILE) {
  const RealDate = Date;
  const realNow = Date.now.bind(Date);
  let seen = null;
  let frozen = null;
  const now = () => {
    let stamp = null;
    try {
      const st = statSync(FILE);
      stamp = `${st.mtimeNs ?? st.mtimeMs}:${st.size}:${st.ino}`;
    } catch {
      stamp = null;
    }
    if (stamp !== seen) {
      seen = stamp;
      frozen = null;
      if (stamp !== null) {
        try {
          const value = JSON.parse(readFileSync(FILE, 'utf8')).frozen_ms;
          frozen = Number.isFinite(value) ? value : null;
        } catch {
          frozen = null;
        }
      }
    }
    return frozen ?? realNow();
  };
  class ScenarioDate extends RealDate {
    constructor(...args) {
      if (args.length === 0) super(now());
      else super(...args);
    }
    static now() {
      return now();
    }
  }
  globalThis.Date = ScenarioDate;
}
