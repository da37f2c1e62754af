export { parseJsonObject, validateShape } from 'rotor-consumers/core';
