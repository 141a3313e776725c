/**
 * Epoch-based RCU over SharedArrayBuffer memory: public API.
 * Stands alone: nothing in this package imports from outside it (the epoch-rcu package).
 * See README.md in this folder for the protocol and usage.
 */
export { rcuInt32s, MAX_READERS } from './layout.js';
export { RcuDomain, type RcuStats } from './domain.js';
export {
  RcuReader,
  DEFAULT_SPIN_LIMIT,
  DEFAULT_MAX_PENDING_CALLBACKS,
  type RcuReaderMode,
  type RcuReaderOptions,
} from './reader.js';
export { RcuError, type RcuErrorCode } from './errors.js';
