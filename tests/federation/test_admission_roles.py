"""A participant of a permissioned task registers with the Merkle proof it computes from the
admission list; it says in one line what is missing when it cannot."""

import pytest
from eth_account import Account
from eth_utils import keccak

from flare.chain import ContentRef, InMemoryChain, TaskCreated
from flare.chain.api.admission import admission_root
from flare.chain.api.errors import NotAdmitted
from flare.crypto import SecretKey
from flare.errors import ConfigError
from flare.federation.protocol.roles import ProtocolParticipant
from flare.federation.task_parameters import DEFAULT_TASK_PARAMETERS
from flare.storage import CODEC_RAW


def device(number: int, admitted: tuple[str, ...] = ()) -> ProtocolParticipant:
    account = Account.from_key(keccak(b"roles-account-%d" % number))
    key = SecretKey.from_seed(keccak(b"roles-bls-%d" % number))
    return ProtocolParticipant(f"device-{number}", account, key, admitted=admitted)


def create(chain: InMemoryChain, admitted: tuple[str, ...]) -> int:
    ref = ContentRef(CODEC_RAW, keccak(b"model"))
    creator = chain.as_sender(Account.from_key(keccak(b"creator")))
    params = DEFAULT_TASK_PARAMETERS.on_chain()
    if admitted:
        receipt = creator.create_permissioned_task(ref, ref, params, admission_root(admitted))
    else:
        receipt = creator.create_task(ref, ref, params)
    return receipt.one(TaskCreated).task_id


def test_admitted_devices_register_with_their_proof_and_open_tasks_need_none():
    fleet = tuple(device(n).address for n in range(5))
    chain = InMemoryChain()
    task_id = create(chain, fleet)
    for number in range(5):
        device(number, fleet).register(chain, task_id)
    assert chain.task(task_id).registered_count == 5
    open_task = create(chain, ())
    device(7).register(chain, open_task)
    assert chain.participant(open_task, device(7).address).registered


def test_a_device_without_the_list_or_outside_it_is_told_so():
    fleet = tuple(device(n).address for n in range(3))
    chain = InMemoryChain()
    task_id = create(chain, fleet)
    with pytest.raises(ConfigError, match=f"task {task_id} admits only listed devices"):
        device(0).register(chain, task_id)
    with pytest.raises(ConfigError, match="is not in the admission list"):
        device(8, fleet).register(chain, task_id)
    # A forged list gives a proof against another root: the chain refuses it.
    forged = (*fleet, device(8).address)
    with pytest.raises(NotAdmitted):
        device(8, forged).register(chain, task_id)
