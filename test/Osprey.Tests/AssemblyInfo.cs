// Tests share libtorch's global state (the default generator seeded by torch.manual_seed, thread settings,
// OpenCV's thread count): run them one at a time so no test sees another's draws.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace Osprey.Tests
{
    internal static class SuiteEnvironment
    {
        // Live streams end with their source in the suite (the servers here end their streams on purpose); the tests of
        // reopening set Osprey.Sources.Reconnection.Variable themselves (tests run one at a time).
        [System.Runtime.CompilerServices.ModuleInitializer]
        internal static void Set() => Environment.SetEnvironmentVariable("OSPREY_STREAM_RECONNECT", "0");
    }
}
