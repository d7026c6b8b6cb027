export * from '../../src/sandbox/git-server.js';
