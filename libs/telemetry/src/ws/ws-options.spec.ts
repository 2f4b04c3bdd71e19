import { resolveTelemetryOptions } from '../telemetry.options.js';

describe('WebSocket options', () => {
  it('gateway messages are recorded and socket.io polling is left out by default', () => {
    const options = resolveTelemetryOptions({}, {});
    expect(options.captureWebSockets).toBe(true);
    expect(options.captureSocketIoPolling).toBe(false);
  });

  it('both can be changed', () => {
    const options = resolveTelemetryOptions({ captureWebSockets: false, captureSocketIoPolling: true }, {});
    expect(options.captureWebSockets).toBe(false);
    expect(options.captureSocketIoPolling).toBe(true);
  });
});
