export * from './net';
export * from './pki';
