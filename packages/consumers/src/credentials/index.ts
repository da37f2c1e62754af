/**
 * rotor-consumers/credentials: the formats of the application credentials rotor makes, shared by the rotator that
 * makes them (in the rotor package) and the code that checks them (this package): API keys and their registry,
 * JWT signing keys and their JWKS table, TLS certificates, CAs and trust bundles. Their zod schemas load zod when
 * first used.
 */
export * from './api-key';
export * from './jwt';
export * from './jwt-schema';
export * from './tls';
export * from './tls-schema';
export * from './keyring';
export * from './keyring-schema';
