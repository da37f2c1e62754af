/**
 * rotor-consumers/credentials: the formats of the application credentials rotor makes, shared by the rotator that
 * makes them (in the rotor package) and the code that checks them (this package): API keys and their registry,
 * JWT signing keys and their JWKS table. The zod schema of a signing key secret loads zod with this entry.
 */
export * from './api-key';
export * from './jwt';
export * from './jwt-schema';
