// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title CISE network token (dev networks)
/// @notice ERC20 with 6 decimals: 1 unit = EUR 0.000001. Accounts holding `MINTER_ROLE` mint; this is
/// for development networks, a production network would use a token issued elsewhere.
contract Token is ERC20, AccessControl {
    /// @notice Role allowed to mint.
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @notice The admin address is zero.
    error TokenZeroAdmin();

    /// @param name_ ERC20 name.
    /// @param symbol_ ERC20 symbol.
    /// @param admin Receives `DEFAULT_ADMIN_ROLE` and `MINTER_ROLE`.
    constructor(string memory name_, string memory symbol_, address admin) ERC20(name_, symbol_) {
        if (admin == address(0)) revert TokenZeroAdmin();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, admin);
    }

    /// @notice 6 decimals (DESIGN §2).
    /// @return 6.
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice Mint `amount` units to `to`; only `MINTER_ROLE`.
    /// @param to Receiver, not zero.
    /// @param amount Units to mint.
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }
}
