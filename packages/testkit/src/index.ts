export * from './net';
export * from './pki';
export * from './redis';
