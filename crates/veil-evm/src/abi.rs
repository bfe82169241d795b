//! PoCo v6's interface, written from iExec's published ABI (the package's own `IexecInterfaceToken`
//! ABI has `hash` overloads with an invalid type, so it is not loaded at run time).

#![allow(clippy::too_many_arguments)]

use alloy::sol;

sol! {
    struct AppOrder { address app; uint256 appprice; uint256 volume; bytes32 tag; address datasetrestrict; address workerpoolrestrict; address requesterrestrict; bytes32 salt; bytes sign; }
    struct DatasetOrder { address dataset; uint256 datasetprice; uint256 volume; bytes32 tag; address apprestrict; address workerpoolrestrict; address requesterrestrict; bytes32 salt; bytes sign; }
    struct WorkerpoolOrder { address workerpool; uint256 workerpoolprice; uint256 volume; bytes32 tag; uint256 category; uint256 trust; address apprestrict; address datasetrestrict; address requesterrestrict; bytes32 salt; bytes sign; }
    struct RequestOrder { address app; uint256 appmaxprice; address dataset; uint256 datasetmaxprice; address workerpool; uint256 workerpoolmaxprice; address requester; uint256 volume; bytes32 tag; uint256 category; uint256 trust; address beneficiary; address callback; string params; bytes32 salt; bytes sign; }
    struct AppOrderOperation { AppOrder order; uint8 operation; bytes sign; }
    struct DatasetOrderOperation { DatasetOrder order; uint8 operation; bytes sign; }
    struct WorkerpoolOrderOperation { WorkerpoolOrder order; uint8 operation; bytes sign; }
    struct RequestOrderOperation { RequestOrder order; uint8 operation; bytes sign; }
    struct Resource { address pointer; address owner; uint256 price; }
    struct DealView { Resource app; Resource dataset; Resource workerpool; uint256 trust; uint256 category; bytes32 tag; address requester; address beneficiary; address callback; string params; uint256 startTime; uint256 botFirst; uint256 botSize; uint256 workerStake; uint256 schedulerRewardRatio; address sponsor; }
    struct TaskView { uint8 status; bytes32 dealid; uint256 idx; uint256 timeref; uint256 contributionDeadline; uint256 revealDeadline; uint256 finalDeadline; bytes32 consensusValue; uint256 revealCounter; uint256 winnerCounter; address[] contributors; bytes32 resultDigest; bytes results; uint256 resultsTimestamp; bytes resultsCallback; }
    struct ContributionView { uint8 status; bytes32 resultHash; bytes32 resultSeal; address enclaveChallenge; uint256 weight; }
    struct AccountView { uint256 stake; uint256 locked; }
    struct CategoryView { string name; string description; uint256 workClockTimeRef; }
    struct AppView { address owner; string name; string appType; bytes multiaddr; bytes32 checksum; bytes mrenclave; }
    struct DatasetView { address owner; string name; bytes multiaddr; bytes32 checksum; }
    struct WorkerpoolView { address owner; string description; uint256 workerStakeRatio; uint256 schedulerRewardRatio; }
    struct Domain712 { string name; string version; uint256 chainId; address verifyingContract; }

    /// The PoCo hub (a diamond): escrow, orders, deals, tasks, accessors.
    interface IHub {
        function name() external view returns (string);
        function domain() external view returns (Domain712);
        function eip712domain_separator() external view returns (bytes32);
        function token() external view returns (address);
        function appregistry() external view returns (address);
        function datasetregistry() external view returns (address);
        function workerpoolregistry() external view returns (address);
        function owner() external view returns (address);
        function countCategory() external view returns (uint256);
        function viewCategory(uint256 id) external view returns (CategoryView);
        function viewAccount(address account) external view returns (AccountView);
        function viewScore(address worker) external view returns (uint256);
        function viewConsumed(bytes32 hash) external view returns (uint256);
        function viewPresigned(bytes32 hash) external view returns (address);
        function viewDeal(bytes32 id) external view returns (DealView);
        function viewTask(bytes32 id) external view returns (TaskView);
        function viewContribution(bytes32 taskid, address worker) external view returns (ContributionView);
        function viewApp(address app) external view returns (AppView);
        function viewDataset(address dataset) external view returns (DatasetView);
        function viewWorkerpool(address workerpool) external view returns (WorkerpoolView);

        function withdraw(uint256 amount) external returns (bool);
        function transfer(address to, uint256 amount) external returns (bool);
        function createCategory(string name, string description, uint256 workClockTimeRef) external returns (uint256);
        function configure(address token, string name, string symbol, uint8 decimals, address appregistry, address datasetregistry, address workerpoolregistry, address v3hub) external;
        function manageAppOrder(AppOrderOperation op) external;
        function manageDatasetOrder(DatasetOrderOperation op) external;
        function manageWorkerpoolOrder(WorkerpoolOrderOperation op) external;
        function manageRequestOrder(RequestOrderOperation op) external;
        function matchOrders(AppOrder app, DatasetOrder dataset, WorkerpoolOrder workerpool, RequestOrder request) external returns (bytes32);
        function initialize(bytes32 dealid, uint256 idx) external returns (bytes32);
        function initializeArray(bytes32[] dealids, uint256[] idxs) external returns (bool);
        function contribute(bytes32 taskid, bytes32 resultHash, bytes32 resultSeal, address enclaveChallenge, bytes enclaveSign, bytes authorizationSign) external;
        function reveal(bytes32 taskid, bytes32 resultDigest) external;
        function reopen(bytes32 taskid) external;
        function finalize(bytes32 taskid, bytes results, bytes resultsCallback) external;
        function contributeAndFinalize(bytes32 taskid, bytes32 resultDigest, bytes results, bytes resultsCallback, address enclaveChallenge, bytes enclaveSign, bytes authorizationSign) external;
        function claim(bytes32 taskid) external;

        event Transfer(address indexed from, address indexed to, uint256 value);
        event Lock(address owner, uint256 amount);
        event Unlock(address owner, uint256 amount);
        event Reward(address owner, uint256 amount, bytes32 ref);
        event Seize(address owner, uint256 amount, bytes32 ref);
        event CreateCategory(uint256 catid, string name, string description, uint256 workClockTimeRef);
        event SignedAppOrder(bytes32 hash);
        event SignedDatasetOrder(bytes32 hash);
        event SignedWorkerpoolOrder(bytes32 hash);
        event SignedRequestOrder(bytes32 hash);
        event ClosedAppOrder(bytes32 hash);
        event ClosedDatasetOrder(bytes32 hash);
        event ClosedWorkerpoolOrder(bytes32 hash);
        event ClosedRequestOrder(bytes32 hash);
        event OrdersMatched(bytes32 dealid, bytes32 appHash, bytes32 datasetHash, bytes32 workerpoolHash, bytes32 requestHash, uint256 volume);
        event SchedulerNotice(address indexed workerpool, bytes32 dealid);
        event TaskInitialize(bytes32 indexed taskid, address indexed workerpool);
        event TaskContribute(bytes32 indexed taskid, address indexed worker, bytes32 hash);
        event TaskConsensus(bytes32 indexed taskid, bytes32 consensus);
        event TaskReveal(bytes32 indexed taskid, address indexed worker, bytes32 digest);
        event TaskReopen(bytes32 indexed taskid);
        event TaskFinalize(bytes32 indexed taskid, bytes results);
        event TaskClaimed(bytes32 indexed taskid);
        event AccurateContribution(address indexed worker, bytes32 indexed taskid);
        event FaultyContribution(address indexed worker, bytes32 indexed taskid);

        error IncompatibleDatasetOrder(string reason);
    }

    /// RLC, the ERC-20 token PoCo escrows (ERC-677-like `approveAndCall`).
    interface IRlc {
        function balanceOf(address owner) external view returns (uint256);
        function transfer(address to, uint256 amount) external returns (bool);
        function approveAndCall(address spender, uint256 amount, bytes extraData) external returns (bool);
    }

    /// The app, dataset and workerpool registries (ERC-721: the token id is the asset's address).
    interface IRegistry {
        function initialize(address previous) external;
        function setBaseURI(string baseUri) external;
        function isRegistered(address entry) external view returns (bool);
        function ownerOf(uint256 tokenId) external view returns (address);
        function balanceOf(address owner) external view returns (uint256);
        function tokenOfOwnerByIndex(address owner, uint256 index) external view returns (uint256);
        function transferFrom(address from, address to, uint256 tokenId) external;
        function createApp(address owner, string name, string appType, bytes multiaddr, bytes32 checksum, bytes mrenclave) external returns (address);
        function createDataset(address owner, string name, bytes multiaddr, bytes32 checksum) external returns (address);
        function createWorkerpool(address owner, string description) external returns (address);
        event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);
    }

    /// A workerpool contract: its policy.
    interface IWorkerpool {
        function changePolicy(uint256 workerStakeRatio, uint256 schedulerRewardRatio) external;
        event PolicyUpdate(uint256 oldWorkerStakeRatioPolicy, uint256 newWorkerStakeRatioPolicy, uint256 oldSchedulerRewardRatioPolicy, uint256 newSchedulerRewardRatioPolicy);
    }

    /// The diamond's cut entry point (EIP-2535) and its constructor arguments.
    interface IDiamond {
        struct FacetCut { address facetAddress; uint8 action; bytes4[] functionSelectors; }
        struct DiamondArgs { address owner; address init; bytes initCalldata; }
        function diamondCut(FacetCut[] cuts, address init, bytes initCalldata) external;
        function facetAddress(bytes4 selector) external view returns (address);
        function init() external;
    }
}
