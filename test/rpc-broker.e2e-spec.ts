import { startBroker, type Broker } from './support/brokers.js';
import { describeRpcTransports } from './support/rpc-suite.js';

/**
 * Microservices over real brokers: Debian's redis-server and nats-server,
 * started by the test on private loopback ports in temporary folders
 * (test/support/brokers.ts; installed by scripts/ensure-brokers.sh when
 * missing). Nothing here is skipped: a broker that cannot start fails the suite.
 */
const brokers: Partial<Record<'redis' | 'nats', Broker>> = {};

beforeAll(async () => {
  [brokers.redis, brokers.nats] = await Promise.all([startBroker('redis'), startBroker('nats')]);
}, 300_000);

afterAll(async () => {
  await Promise.all(Object.values(brokers).map((broker) => broker?.stop()));
});

describeRpcTransports([
  ['Redis', async () => ({ name: 'redis', port: brokers.redis!.port })],
  ['NATS', async () => ({ name: 'nats', url: brokers.nats!.url })],
]);
