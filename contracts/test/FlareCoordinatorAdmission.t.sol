// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Cid} from "../src/CID.sol";
import {Admission} from "../src/Admission.sol";
import {IFlareCoordinator as IFC, TaskStatus} from "../src/IFlareCoordinator.sol";
import {CoordinatorTestBase} from "./utils/CoordinatorTestBase.sol";

/// @notice `Admission.verify` behind an external call, so fuzzed proofs arrive as calldata.
contract AdmissionHarness {
    function verify(bytes32[] calldata proof, bytes32 root, address account) external pure returns (bool) {
        return Admission.verify(proof, root, account);
    }
}

/// @notice Merkle trees of admitted accounts built the way `flare.chain.api.admission` builds
///         them (pairs hashed in ascending order, the last node of an odd level moved up), over
///         leaves in the given order: the contract accepts any tree shape whose paths lead to
///         the root.
library Fleet {
    function root(address[] memory accounts) internal pure returns (bytes32) {
        bytes32[] memory level = _leaves(accounts);
        while (level.length > 1) {
            level = _up(level);
        }
        return level[0];
    }

    function proof(address[] memory accounts, uint256 index) internal pure returns (bytes32[] memory path) {
        bytes32[] memory level = _leaves(accounts);
        bytes32[] memory siblings = new bytes32[](256);
        uint256 depth;
        while (level.length > 1) {
            uint256 sibling = index ^ 1;
            if (sibling < level.length) siblings[depth++] = level[sibling];
            level = _up(level);
            index /= 2;
        }
        path = new bytes32[](depth);
        for (uint256 i; i < depth; ++i) {
            path[i] = siblings[i];
        }
    }

    function _leaves(address[] memory accounts) private pure returns (bytes32[] memory leaves) {
        leaves = new bytes32[](accounts.length);
        for (uint256 i; i < accounts.length; ++i) {
            leaves[i] = Admission.leaf(accounts[i]);
        }
    }

    function _up(bytes32[] memory level) private pure returns (bytes32[] memory above) {
        above = new bytes32[]((level.length + 1) / 2);
        for (uint256 i; i < level.length; i += 2) {
            if (i + 1 == level.length) {
                above[i / 2] = level[i];
            } else {
                (bytes32 a, bytes32 b) = level[i] < level[i + 1] ? (level[i], level[i + 1]) : (level[i + 1], level[i]);
                above[i / 2] = keccak256(abi.encode(a, b));
            }
        }
    }
}

/// @notice Permissioned tasks (docs/protocol.md §2.5): only the creator's fleet registers, the
///         creator updates the fleet, and neither a stranger, a Sybil flood, a dropped device nor
///         a proof from another task gets in.
contract FlareCoordinatorAdmissionTest is CoordinatorTestBase {
    AdmissionHarness internal harness = new AdmissionHarness();

    function _fleet(uint256 first, uint256 count) internal pure returns (address[] memory accounts) {
        accounts = new address[](count);
        for (uint256 i; i < count; ++i) {
            accounts[i] = _addr(first + i);
        }
    }

    function _createPermissioned(address[] memory accounts) internal returns (uint256 taskId) {
        vm.prank(creator);
        taskId = coordinator.createPermissionedTask(
            _cid("initial model"), Cid(DAG_PB, keccak256("validation set")), _params(), Fleet.root(accounts)
        );
    }

    /// @dev Actor `index` registers in `taskId` with its position `position` in `accounts`.
    function _admit(uint256 taskId, uint256 index, address[] memory accounts, uint256 position) internal {
        bytes memory key = _key(index);
        bytes memory pop = _pop(taskId, index);
        bytes32[] memory path = Fleet.proof(accounts, position);
        vm.prank(_addr(index));
        coordinator.registerAdmitted(taskId, key, pop, path);
    }

    function test_createPermissionedTask_storesTheRootAndEmitsIt() public {
        address[] memory fleet = _fleet(0, 5);
        vm.expectEmit(address(coordinator));
        emit IFC.AdmissionRootSet(1, Fleet.root(fleet));
        uint256 taskId = _createPermissioned(fleet);
        assertEq(coordinator.admissionRoot(taskId), Fleet.root(fleet));
        assertEq(coordinator.admissionRoot(_createTask(_params())), bytes32(0));
    }

    function test_fleetRegisters_strangersAndSybilsAreRefused() public {
        address[] memory fleet = _fleet(0, 5);
        uint256 taskId = _createPermissioned(fleet);
        for (uint256 i; i < 5; ++i) {
            _admit(taskId, i, fleet, i);
        }
        // A Sybil flood: 20 keys of the attacker, each with a member's proof or none.
        for (uint256 i = 100; i < 120; ++i) {
            bytes memory key = _key(i);
            bytes memory pop = _pop(taskId, i);
            bytes32[] memory stolen = Fleet.proof(fleet, i % 5);
            vm.prank(_addr(i));
            vm.expectRevert(abi.encodeWithSelector(IFC.NotAdmitted.selector, taskId, _addr(i)));
            coordinator.registerAdmitted(taskId, key, pop, stolen);
            vm.prank(_addr(i));
            vm.expectRevert(abi.encodeWithSelector(IFC.AdmissionProofRequired.selector, taskId));
            coordinator.register(taskId, key, pop);
        }
        assertEq(coordinator.getTask(taskId).registeredCount, 5);
        _start(taskId);
        assertEq(coordinator.getRound(taskId).registeredSnapshot, 5);
    }

    function test_registerAdmitted_checksAdmissionBeforeThePossessionProof() public {
        address[] memory fleet = _fleet(0, 3);
        uint256 taskId = _createPermissioned(fleet);
        bytes32[] memory path = Fleet.proof(fleet, 0);
        vm.prank(_addr(7));
        vm.expectRevert(abi.encodeWithSelector(IFC.NotAdmitted.selector, taskId, _addr(7)));
        coordinator.registerAdmitted(taskId, "", "", path);
        // An admitted device still needs a valid key and proof of possession.
        bytes memory key = _key(0);
        bytes memory otherPop = _pop(taskId, 1);
        vm.prank(_addr(0));
        vm.expectRevert(abi.encodeWithSelector(IFC.InvalidPossessionProof.selector, taskId, _addr(0)));
        coordinator.registerAdmitted{gas: CALL_GAS}(taskId, key, otherPop, path);
    }

    function test_setAdmissionRoot_admitsAndDropsDevices() public {
        address[] memory fleet = _fleet(0, 4);
        uint256 taskId = _createPermissioned(fleet);
        _admit(taskId, 0, fleet, 0);

        address[] memory next = new address[](3);
        (next[0], next[1], next[2]) = (_addr(0), _addr(1), _addr(9));
        vm.expectEmit(address(coordinator));
        emit IFC.AdmissionRootSet(taskId, Fleet.root(next));
        vm.prank(creator);
        coordinator.setAdmissionRoot(taskId, Fleet.root(next));

        _admit(taskId, 9, next, 2);
        _admit(taskId, 1, next, 1);
        // Device 3 was dropped before it registered: its old proof no longer leads to the root.
        bytes memory key = _key(3);
        bytes memory pop = _pop(taskId, 3);
        bytes32[] memory old = Fleet.proof(fleet, 3);
        vm.prank(_addr(3));
        vm.expectRevert(abi.encodeWithSelector(IFC.NotAdmitted.selector, taskId, _addr(3)));
        coordinator.registerAdmitted(taskId, key, pop, old);
        // Device 0 registered under the old root and stays registered.
        assertTrue(coordinator.getParticipant(taskId, _addr(0)).registered);
        assertEq(coordinator.getTask(taskId).registeredCount, 3);
    }

    function test_setAdmissionRoot_refusals() public {
        uint256 taskId = _createPermissioned(_fleet(0, 2));
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IFC.NotTaskCreator.selector, taskId, stranger));
        coordinator.setAdmissionRoot(taskId, keccak256("mine"));
        vm.prank(creator);
        vm.expectRevert(IFC.ZeroAdmissionRoot.selector);
        coordinator.setAdmissionRoot(taskId, bytes32(0));

        uint256 open = _createTask(_params());
        vm.prank(creator);
        vm.expectRevert(abi.encodeWithSelector(IFC.OpenAdmission.selector, open));
        coordinator.setAdmissionRoot(open, keccak256("late"));

        vm.prank(creator);
        coordinator.cancelTask(taskId);
        vm.prank(creator);
        vm.expectRevert(abi.encodeWithSelector(IFC.TaskEnded.selector, taskId, TaskStatus.Cancelled));
        coordinator.setAdmissionRoot(taskId, keccak256("after"));
    }

    function test_openTask_refusesAdmissionProofs_andZeroRootsAreRefused() public {
        uint256 open = _createTask(_params());
        bytes32[] memory none = new bytes32[](0);
        bytes memory key = _key(0);
        bytes memory pop = _pop(open, 0);
        vm.prank(_addr(0));
        vm.expectRevert(abi.encodeWithSelector(IFC.OpenAdmission.selector, open));
        coordinator.registerAdmitted(open, key, pop, none);

        vm.prank(creator);
        vm.expectRevert(IFC.ZeroAdmissionRoot.selector);
        coordinator.createPermissionedTask(_cid("m"), _cid("v"), _params(), bytes32(0));
        assertEq(coordinator.taskCount(), 1);
    }

    /// @dev Two fleets, two tasks: a device admitted to one is no member of the other, whatever
    ///      proof it brings.
    function test_admissionProof_fromAnotherTaskIsRefused() public {
        address[] memory fleetA = _fleet(0, 3);
        address[] memory fleetB = _fleet(10, 3);
        _createPermissioned(fleetA);
        uint256 taskB = _createPermissioned(fleetB);
        bytes memory key = _key(1);
        bytes memory pop = _pop(taskB, 1);
        bytes32[] memory path = Fleet.proof(fleetA, 1);
        vm.prank(_addr(1));
        vm.expectRevert(abi.encodeWithSelector(IFC.NotAdmitted.selector, taskB, _addr(1)));
        coordinator.registerAdmitted(taskB, key, pop, path);
    }

    function test_permissionedTask_runsARound() public {
        address[] memory fleet = _fleet(0, 3);
        uint256 taskId = _createPermissioned(fleet);
        for (uint256 i; i < 3; ++i) {
            _admit(taskId, i, fleet, i);
        }
        _start(taskId);
        _seal(taskId);
        for (uint256 i; i < 3; ++i) {
            _submit(taskId, i);
            _claim(taskId, i);
        }
        _toVoting(taskId);
        uint32 proposalId = _propose(taskId, 0, _cid("round 1"), _all(3));
        _vote(taskId, 0, proposalId, true);
        _vote(taskId, 1, proposalId, true);
        assertEq(coordinator.getTask(taskId).round, 2);
    }

    /// forge-config: default.fuzz.runs = 64
    function testFuzz_everyMemberIsAdmitted_noOneElseIs(uint8 size, uint256 pick, address intruder, uint8 flip)
        public
        view
    {
        uint256 count = bound(size, 1, 40);
        address[] memory fleet = new address[](count);
        for (uint256 i; i < count; ++i) {
            fleet[i] = address(uint160(uint256(keccak256(abi.encode(pick, i)))));
            vm.assume(fleet[i] != intruder);
        }
        bytes32 root = Fleet.root(fleet);
        uint256 member = pick % count;
        bytes32[] memory path = Fleet.proof(fleet, member);
        assertTrue(harness.verify(path, root, fleet[member]));
        assertFalse(harness.verify(path, root, intruder));
        if (path.length > 0) {
            path[flip % path.length] ^= bytes32(uint256(1));
            assertFalse(harness.verify(path, root, fleet[member]));
        }
    }
}
