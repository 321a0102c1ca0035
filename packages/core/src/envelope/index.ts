export * from './format';
export * from './codec';
export * from './payload';
export * from './key-id';
