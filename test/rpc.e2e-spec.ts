import { freePort } from './support/rpc-apps.js';
import { describeRpcTransports } from './support/rpc-suite.js';

/**
 * Microservices over TCP (`@nestjs/microservices`, no broker): each server
 * listens on a loopback port of its own. The same suite runs over real Redis
 * and NATS brokers in rpc-broker.e2e-spec.ts.
 */
describeRpcTransports([['TCP', async () => ({ name: 'tcp', port: await freePort() })]]);
