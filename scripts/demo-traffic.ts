// `npm run demo:traffic`: a mixed workload against a running demo (`npm start`),
// with frontend-style events sent where the demo sends its own.
// DEMO_URL (default http://127.0.0.1:3000), POSTHOG_HOST (default the explorer,
// http://127.0.0.1:8010), DEMO_USERS (default 6).
import { runDemoTraffic } from '../apps/demo/src/demo-traffic.js';

const apiUrl = process.env.DEMO_URL ?? `http://127.0.0.1:${process.env.PORT ?? 3000}`;
const posthogHost = process.env.POSTHOG_HOST ?? `http://127.0.0.1:${process.env.EXPLORER_PORT ?? 8010}`;

try {
  const result = await runDemoTraffic({
    apiUrl,
    posthogHost,
    posthogKey: process.env.POSTHOG_API_KEY ?? 'phc_local_explorer',
    users: Number(process.env.DEMO_USERS) || 6,
    log: (line) => console.log(line),
  });
  console.log(`See them in the explorer: ${posthogHost}/#journey?distinct_id=${encodeURIComponent(result.users[0].distinctId)}`);
} catch (error) {
  console.error(`Demo traffic failed: ${(error as Error).message}. Is the demo running (npm start)?`);
  process.exit(1);
}
