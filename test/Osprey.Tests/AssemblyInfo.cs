// Tests share libtorch's global state (the default generator seeded by torch.manual_seed, thread settings,
// OpenCV's thread count): run them one at a time so no test sees another's draws.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
