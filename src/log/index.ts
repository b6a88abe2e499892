export { createLogger, silentLogger, type Logger, type LogLevel, type LoggerOptions } from './logger.js';
export { redact, redactText, TokenPrefix } from './redact.js';
export { PauseMonitor, type Pause, type PauseCause, type PauseMonitorOptions } from './pause-monitor.js';
