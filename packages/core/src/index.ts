export * from './errors';
export * from './provider';
export * from './wrap-context';
export * from './secrets';
export * from './deadline';
export * from './envelope';
export * from './core-dumps';
