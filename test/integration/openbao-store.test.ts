import { secretStoreContract } from '../../packages/consumers/test/contract/secret-store';
import { uniqueName } from '../helpers/env';
import { BAO_MOUNT, baoStore, createBaoSecret } from '../helpers/openbao';

// Port 1 (tcpmux) answers on no machine this runs on: a store that does not answer.
const closedPort = 1;

secretStoreContract('OpenBao KV v2', () => ({
  store: baoStore(),
  second: baoStore(),
  arnPattern: new RegExp(`^bao:${BAO_MOUNT}/contract/`),
  unreachable: baoStore({ address: `http://127.0.0.1:${closedPort}` }),
  create: createBaoSecret,
  uniqueId: (marker) => `bao:${BAO_MOUNT}/${uniqueName(`contract/${marker}`)}`,
}));
