using Osprey.Config;
using Osprey.Training;
using Osprey.Runtime;

namespace Osprey.Distributed;

/// <summary>How a launched data-parallel training job ended.</summary>
/// <param name="ExitCode">0 when the (last) launch succeeded on every rank.</param>
/// <param name="Restarts">Relaunches used (at most <c>max_restarts</c>).</param>
/// <param name="FailedRank">The rank blamed for the last failure, when known.</param>
/// <param name="RunDirectory">The run folder shared by every launch.</param>
/// <param name="Elapsed">Wall time of all launches.</param>
public sealed record DistributedLaunchResult(int ExitCode, int Restarts, int? FailedRank, string RunDirectory, TimeSpan Elapsed)
{
    /// <summary>Ranks of the last launch (fewer than asked when lost ranks were left behind, <c>min_ranks</c>).</summary>
    public int World { get; init; }

    /// <summary>Why the job failed, naming the rank (null on success).</summary>
    public string? Message { get; init; }
}

/// <summary>
/// <c>osprey train … nproc=N</c> (CPU: N ranks under mpirun) or <c>device=0,1,2,3</c> (one spawned rank per GPU, torchrun
/// variables, NCCL): fixes the run folder first (so that every launch and every rank uses the same one), starts the ranks
/// running the same program with the same arguments, and with <c>max_restarts=N</c> relaunches every rank from the
/// newest complete checkpoint (weights/last.ckpt, written atomically by rank 0) after a failure.
/// </summary>
public static class DistributedLaunch
{
    /// <summary>Ranks the arguments ask for on this machine: one per listed GPU, else <c>nproc</c>.</summary>
    public static int ProcessCount(OspreyArgs args)
    {
        var request = args.DeviceOrDefault();
        return request.IsCuda && request.CudaIndices.Count > 1 ? request.CudaIndices.Count : Math.Max(args.Nproc, 1);
    }

    /// <summary>True when this process should launch ranks rather than train: more than one asked, none running yet.</summary>
    public static bool ShouldLaunch(OspreyArgs args, DistributedEnvironment environment) =>
        !environment.IsDistributed && ProcessCount(LaunchArguments(args)) > 1;

    /// <summary>
    /// The launch settings of <paramref name="args"/>: a resumed run's own (<c>nproc</c>, <c>device</c>, <c>max_restarts</c>,
    /// <c>min_ranks</c> from its checkpoint, as Ultralytics resumes with the checkpoint's arguments) where not given again,
    /// so <c>resume=…</c> alone relaunches the world the run was started with, and <c>resume=… nproc=2</c> another one.
    /// </summary>
    public static OspreyArgs LaunchArguments(OspreyArgs args)
    {
        if (TrainingSetup.ResumeCheckpoint(args) is not { } checkpoint) return args;
        var saved = ArgsYaml.Deserialize(Checkpoint.ReadState(checkpoint).Args);
        bool ranksGiven = args.IsGiven("nproc") || args.IsGiven("device");
        return args with
        {
            Nproc = ranksGiven ? args.Nproc : saved.Nproc, Device = ranksGiven ? args.Device : saved.Device,
            MaxRestarts = args.IsGiven("max_restarts") ? args.MaxRestarts : saved.MaxRestarts,
            MinRanks = args.IsGiven("min_ranks") ? args.MinRanks : saved.MinRanks,
        };
    }

    /// <summary>The rank command line: every argument given explicitly, then the fixed run folder (and resume).</summary>
    public static IReadOnlyList<string> RankArguments(OspreyArgs args, string runDirectory, string? resume)
    {
        var skip = new HashSet<string>(StringComparer.Ordinal) { "project", "name", "exist_ok", "resume", "device" };
        var tokens = ArgsSchema.All.Where(s => args.IsGiven(s.Key) && !skip.Contains(s.Key))
            .Select(s => $"{s.Key}={ArgsSchema.Format(s.Property.GetValue(args))}").ToList();
        if (args.Device is { } device) tokens.Add($"device={ArgsSchema.Format(device)}");   // given, resumed, or without a lost GPU
        string full = Path.GetFullPath(runDirectory);
        tokens.Add($"project={Path.GetDirectoryName(full)}");
        tokens.Add($"name={Path.GetFileName(full)}");
        tokens.Add("exist_ok=True");
        if (resume is not null) tokens.Add($"resume={resume}");
        return tokens;
    }

    /// <summary>
    /// Runs the job: <paramref name="program"/> with <paramref name="programArguments"/> (e.g. the dotnet host and the CLI dll,
    /// then <c>train</c>) followed by the rank arguments. A failed launch is relaunched from the newest checkpoint up to
    /// <c>max_restarts</c> times at the same world; when those retries are spent the failed rank counts as lost for good and,
    /// while <c>min_ranks</c> allows, the job continues on the survivors (torchrun's <c>--nnodes=MIN:MAX</c>): the largest
    /// smaller world that divides the global batch. note: blocks (asynchronously) until the job ends.
    /// </summary>
    public static async Task<DistributedLaunchResult> RunAsync(OspreyArgs args, string program, IReadOnlyList<string> programArguments,
        Action<RankOutputLine>? output = null, IReadOnlyDictionary<string, string>? environment = null,
        CancellationToken cancellation = default)
    {
        args = LaunchArguments(args);
        if (args.MinRanks < 0) throw new ArgumentsException($"min_ranks={args.MinRanks}: must be 0 (the world size: no shrinking) or more");
        int processes = ProcessCount(args);
        int minRanks = args.MinRanks > 0 ? Math.Min(args.MinRanks, processes) : processes;
        bool cuda = args.DeviceOrDefault().IsCuda;
        string? resume = TrainingSetup.ResumeCheckpoint(args) is { } given ? Path.GetFullPath(given) : null;
        string runDirectory = resume is not null
            ? Checkpoint.ReadState(resume).RunDirectory
            : RunDirectory.Create(args.Project, args.Name, "train", args.ExistOk);
        string checkpoint = Path.Combine(runDirectory, "weights", "last.ckpt");
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var variables = new Dictionary<string, string>(environment ?? new Dictionary<string, string>());
        for (int restart = 0, here = 0; ; restart++)
        {
            var options = new LaunchOptions(processes, program, programArguments.Concat(RankArguments(args, runDirectory, resume)).ToArray())
            {
                Mode = cuda ? LaunchMode.Spawn : LaunchMode.Mpirun,
                Environment = variables,
                Output = output,
            };
            LaunchResult result = await LocalLauncher.RunAsync(options, cancellation).ConfigureAwait(false);
            DistributedLaunchResult End(string? message = null) =>
                new(result.ExitCode, restart, result.FailedRank, runDirectory, watch.Elapsed) { World = processes, Message = message };
            if (result.ExitCode == 0 || cancellation.IsCancellationRequested) return End();
            if (File.Exists(checkpoint)) resume = Path.GetFullPath(checkpoint);
            string rank = result.FailedRank?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?";
            if (here < args.MaxRestarts)
            {
                here++;
                output?.Invoke(new RankOutputLine(-1, true, $"osprey launcher: rank {rank} failed (exit {result.ExitCode}); " +
                    $"restart {here} of {args.MaxRestarts} on {processes} rank(s) from {resume ?? "the start"}"));
                continue;
            }
            string lost = $"rank {rank} is lost: it failed {here + 1} launch(es) of {processes} rank(s) in a row (exit {result.ExitCode}, max_restarts={args.MaxRestarts})";
            int survivors = result.FailedRank is null ? 0 : Survivors(processes, minRanks, GlobalBatch(args, resume));
            if (survivors == 0)
                return End(processes == 1 ? null : $"training failed: {lost}, and min_ranks={minRanks} allows no fewer than {minRanks} rank(s)" +
                    (result.FailedRank is null ? " (the failed rank is not known)" : "") + $"; run folder {runDirectory}");
            variables[WorldChange.ReasonVariable] = $"{lost}; continuing on {survivors} rank(s)";
            output?.Invoke(new RankOutputLine(-1, true, $"osprey launcher: {lost}; continuing on {survivors} rank(s) (min_ranks={minRanks}) " +
                $"from {resume ?? "the start"}"));
            if (cuda)                                                    // the lost rank's GPU is left out (spawned rank r takes the r-th listed)
                args = args with { Device = new DeviceRequest(true, args.DeviceOrDefault().CudaIndices.Where((_, i) => i != result.FailedRank).Take(survivors).ToArray()) };
            (processes, here) = (survivors, 0);
        }
    }

    /// <summary>The largest world below <paramref name="world"/>, at least <paramref name="minRanks"/>, over which
    /// <paramref name="batch"/> splits evenly (any when the batch is not fixed yet); 0 when there is none.</summary>
    public static int Survivors(int world, int minRanks, int batch)
    {
        for (int w = world - 1; w >= Math.Max(minRanks, 1); w--)
            if (batch <= 0 || batch % w == 0) return w;
        return 0;
    }

    // The global batch a relaunch trains with: the checkpoint's (it may have changed on a resume), else the arguments'.
    static int GlobalBatch(OspreyArgs args, string? checkpoint)
    {
        if (args.IsGiven("batch") || checkpoint is null) return (int)args.Batch;
        TrainingState state = Checkpoint.ReadState(checkpoint);
        return state.Batch > 0 ? state.Batch : (int)ArgsYaml.Deserialize(state.Args).Batch;
    }
}
