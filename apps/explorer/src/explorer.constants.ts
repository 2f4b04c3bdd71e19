/** Injection token of the explorer's `ExplorerSettings`. */
export const EXPLORER_SETTINGS = Symbol('EXPLORER_SETTINGS');
