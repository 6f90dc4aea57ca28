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
public sealed record DistributedLaunchResult(int ExitCode, int Restarts, int? FailedRank, string RunDirectory, TimeSpan Elapsed);

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
        !environment.IsDistributed && ProcessCount(args) > 1;

    /// <summary>The rank command line: every argument given explicitly, then the fixed run folder (and resume).</summary>
    public static IReadOnlyList<string> RankArguments(OspreyArgs args, string runDirectory, string? resume)
    {
        var skip = new HashSet<string>(StringComparer.Ordinal) { "project", "name", "exist_ok", "resume" };
        var tokens = ArgsSchema.All.Where(s => args.IsGiven(s.Key) && !skip.Contains(s.Key))
            .Select(s => $"{s.Key}={ArgsSchema.Format(s.Property.GetValue(args))}").ToList();
        string full = Path.GetFullPath(runDirectory);
        tokens.Add($"project={Path.GetDirectoryName(full)}");
        tokens.Add($"name={Path.GetFileName(full)}");
        tokens.Add("exist_ok=True");
        if (resume is not null) tokens.Add($"resume={resume}");
        return tokens;
    }

    /// <summary>
    /// Runs the job: <paramref name="program"/> with <paramref name="programArguments"/> (e.g. the dotnet host and the CLI dll,
    /// then <c>train</c>) followed by the rank arguments. note: blocks (asynchronously) until the job ends.
    /// </summary>
    public static async Task<DistributedLaunchResult> RunAsync(OspreyArgs args, string program, IReadOnlyList<string> programArguments,
        Action<RankOutputLine>? output = null, IReadOnlyDictionary<string, string>? environment = null,
        CancellationToken cancellation = default)
    {
        int processes = ProcessCount(args);
        bool cuda = args.DeviceOrDefault().IsCuda;
        string? resume = TrainingSetup.ResumeCheckpoint(args) is { } given ? Path.GetFullPath(given) : null;
        string runDirectory = resume is not null
            ? Checkpoint.ReadState(resume).RunDirectory
            : RunDirectory.Create(args.Project, args.Name, "train", args.ExistOk);
        string checkpoint = Path.Combine(runDirectory, "weights", "last.ckpt");
        var watch = System.Diagnostics.Stopwatch.StartNew();
        for (int restart = 0; ; restart++)
        {
            var options = new LaunchOptions(processes, program, programArguments.Concat(RankArguments(args, runDirectory, resume)).ToArray())
            {
                Mode = cuda ? LaunchMode.Spawn : LaunchMode.Mpirun,
                Environment = environment,
                Output = output,
            };
            LaunchResult result = await LocalLauncher.RunAsync(options, cancellation).ConfigureAwait(false);
            if (result.ExitCode == 0 || restart >= args.MaxRestarts || cancellation.IsCancellationRequested)
                return new DistributedLaunchResult(result.ExitCode, restart, result.FailedRank, runDirectory, watch.Elapsed);
            if (File.Exists(checkpoint)) resume = Path.GetFullPath(checkpoint);
            output?.Invoke(new RankOutputLine(-1, true,
                $"osprey launcher: rank {result.FailedRank?.ToString() ?? "?"} failed (exit {result.ExitCode}); restart {restart + 1} of " +
                $"{args.MaxRestarts} from {(resume ?? "the start")}"));
        }
    }
}
