// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {StakeHandler} from "./utils/StakeHandler.sol";
import {CoordinatorTestBase} from "./utils/CoordinatorTestBase.sol";

/// @notice Under random deposits, withdrawals, starts, timeouts and cancellations of staked
///         tasks (`StakeHandler`), the contract holds exactly the stakes not yet withdrawn, and
///         every withdrawal paid back exactly what was bonded.
contract FlareCoordinatorStakeInvariantTest is CoordinatorTestBase {
    StakeHandler internal handler;

    function setUp() public override {
        super.setUp();
        handler = new StakeHandler(coordinator);
        targetContract(address(handler));
    }

    /// forge-config: default.invariant.runs = 16
    /// forge-config: default.invariant.depth = 64
    function invariant_balanceIsTheSumOfUnwithdrawnStakes() public view {
        uint256 held;
        for (uint256 taskId = 1; taskId <= handler.TASKS(); ++taskId) {
            for (uint256 i; i < handler.ACTORS(); ++i) {
                held += coordinator.stakeOf(taskId, handler.actors(i));
            }
        }
        assertEq(address(coordinator).balance, held, "balance differs from the stakes");
        assertEq(handler.deposited() - handler.withdrawn(), held, "deposits minus withdrawals");
    }
}
