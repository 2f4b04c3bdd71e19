// Preloaded (`node --import`) into the apps `npm start` launches: when the launcher
// goes away by any means (a signal, a crash, kill -9), its IPC channel closes, and the
// app stops itself with SIGTERM, which runs its shutdown hooks (the demo delivers its
// queued events). So no app outlives the launcher to hold its port and the DuckDB lock.
if (typeof process.send === 'function') {
  process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  // The channel must not keep an app alive on its own.
  (process.channel as { unref?: () => void } | undefined)?.unref?.();
}
export {};
