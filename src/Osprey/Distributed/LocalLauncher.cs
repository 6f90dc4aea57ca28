using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Osprey.Distributed;

/// <summary>How <see cref="LocalLauncher"/> starts the ranks.</summary>
public enum LaunchMode
{
    /// <summary><c>mpirun -np N</c>: ranks get OMPI_COMM_WORLD_* and use MPI (CPU training; NCCL id over MPI).</summary>
    Mpirun,

    /// <summary>N child processes with torchrun-style RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT (NCCL via TCP rendezvous).</summary>
    Spawn,
}

/// <summary>One line a rank (or mpirun) wrote. <paramref name="Rank"/> is -1 for mpirun's own lines in Mpirun mode.</summary>
public readonly record struct RankOutputLine(int Rank, bool IsError, string Text);

/// <summary>What to launch on this machine.</summary>
/// <param name="ProcessCount">Number of ranks (nproc).</param>
/// <param name="Program">The executable of every rank (e.g. the dotnet host).</param>
/// <param name="Arguments">Its arguments (e.g. the app's dll, then the app's arguments).</param>
public sealed record LaunchOptions(int ProcessCount, string Program, IReadOnlyList<string> Arguments)
{
    /// <summary>mpirun (default) or torchrun-style spawning.</summary>
    public LaunchMode Mode { get; init; } = LaunchMode.Mpirun;

    /// <summary>Kill every rank and return exit code 124 after this long; null waits forever.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>Extra environment variables for every rank.</summary>
    public IReadOnlyDictionary<string, string>? Environment { get; init; }

    /// <summary>Working directory of the ranks; null = this process's.</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>Receives each output line as it arrives (from reader threads: must be thread-safe).</summary>
    public Action<RankOutputLine>? Output { get; init; }

    /// <summary>Spawn mode: MASTER_PORT; 0 picks a free port.</summary>
    public int MasterPort { get; init; }

    /// <summary>Launches <paramref name="dll"/> with the dotnet host that runs this process.</summary>
    public static LaunchOptions ForDotnetDll(int processCount, string dll, IEnumerable<string> arguments) =>
        new(processCount, LocalLauncher.DotnetHost, new[] { dll }.Concat(arguments).ToArray());
}

/// <summary>The end of a launch.</summary>
/// <param name="ExitCode">0 when every rank succeeded; else the first failing rank's code (mpirun's in Mpirun mode), 124 on timeout.</param>
/// <param name="Elapsed">Wall time from start to the last process's exit.</param>
/// <param name="Output">Every line, in arrival order.</param>
/// <param name="FailedRank">The first rank that failed, when known (Spawn mode; Mpirun mode from mpirun's message).</param>
/// <param name="TimedOut">True when <see cref="LaunchOptions.Timeout"/> ended the job.</param>
public sealed record LaunchResult(int ExitCode, TimeSpan Elapsed, IReadOnlyList<RankOutputLine> Output, int? FailedRank, bool TimedOut)
{
    /// <summary>All output as text, one line per output line.</summary>
    public string Text => string.Join('\n', Output.Select(line => line.Text));
}

/// <summary>
/// Starts N ranks of a command on this machine (what <c>osprey train … nproc=N</c> calls), streams their output,
/// and ends the job as soon as one rank fails: mpirun does that itself; in Spawn mode the launcher kills the others.
/// </summary>
public static partial class LocalLauncher
{
    /// <summary>The dotnet host running this process (falls back to <c>dotnet</c> on PATH).</summary>
    public static string DotnetHost
    {
        get
        {
            string? path = System.Environment.ProcessPath;
            if (path is not null && Path.GetFileNameWithoutExtension(path) == "dotnet") return path;
            return System.Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        }
    }

    /// <summary>Full path of <c>mpirun</c> (<c>OSPREY_MPIRUN</c>, then PATH), or null when OpenMPI is not installed.</summary>
    public static string? FindMpirun()
    {
        if (System.Environment.GetEnvironmentVariable("OSPREY_MPIRUN") is { Length: > 0 } configured && File.Exists(configured))
            return configured;
        foreach (string folder in (System.Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
        {
            if (folder.Length == 0) continue;
            string candidate = Path.Combine(folder, "mpirun");
            if (File.Exists(candidate)) return candidate;
        }
        return File.Exists("/usr/bin/mpirun") ? "/usr/bin/mpirun" : null;
    }

    /// <summary>Runs the job to its end. note: blocks (asynchronously) until every rank has exited.</summary>
    /// <exception cref="DistributedException">mpirun is missing (Mpirun mode).</exception>
    public static async Task<LaunchResult> RunAsync(LaunchOptions options, CancellationToken cancellation = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.ProcessCount, 1);
        return options.Mode == LaunchMode.Mpirun
            ? await RunMpirunAsync(options, cancellation).ConfigureAwait(false)
            : await RunSpawnedAsync(options, cancellation).ConfigureAwait(false);
    }

    /// <summary>Torch threads of each of <paramref name="ranks"/> CPU ranks on this machine: its cores shared evenly.</summary>
    public static int ThreadsPerRank(int ranks) => Math.Max(1, System.Environment.ProcessorCount / Math.Max(1, ranks));

    static async Task<LaunchResult> RunMpirunAsync(LaunchOptions options, CancellationToken cancellation)
    {
        string mpirun = FindMpirun() ?? throw new DistributedException(
            "mpirun not found: install OpenMPI (apt-get install openmpi-bin, or build/install-deps.sh) or set OSPREY_MPIRUN");
        // --oversubscribe: more ranks than cores is fine for tests; --allow-run-as-root: containers.
        // --bind-to none: mpirun binds each rank of np <= 2 to one core by default, which would leave a rank one core of
        // many; the ranks share the cores instead, each with cores / np torch threads (OMP_NUM_THREADS, unless given).
        var arguments = new List<string> { "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", options.ProcessCount.ToString() };
        arguments.Add(options.Program);
        arguments.AddRange(options.Arguments);
        var output = new OutputCollector(options.Output);
        var watch = Stopwatch.StartNew();
        using Process process = Start(mpirun, arguments, options, null, output, rank: -1, ThreadDefaults(options));
        bool timedOut = await WaitAsync(process, options.Timeout, cancellation).ConfigureAwait(false);
        int exitCode = timedOut ? 124 : process.ExitCode;
        int? failedRank = exitCode == 0 ? null : ParseMpirunFailedRank(output.Text);
        return new LaunchResult(exitCode, watch.Elapsed, output.Lines, failedRank, timedOut);
    }

    // Every rank gets cores / ranks torch threads unless OMP_NUM_THREADS is given (torchrun sets 1 for several ranks):
    // ranks that each start a thread per core would oversubscribe the machine.
    static Dictionary<string, string> ThreadDefaults(LaunchOptions options) => new()
    {
        ["OMP_NUM_THREADS"] = ThreadsPerRank(options.ProcessCount).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    static async Task<LaunchResult> RunSpawnedAsync(LaunchOptions options, CancellationToken cancellation)
    {
        int port = options.MasterPort != 0 ? options.MasterPort : FreePort();
        var output = new OutputCollector(options.Output);
        var watch = Stopwatch.StartNew();
        var processes = new List<Process>();
        try
        {
            for (int rank = 0; rank < options.ProcessCount; rank++)
            {
                var variables = new Dictionary<string, string>
                {
                    ["RANK"] = rank.ToString(), ["WORLD_SIZE"] = options.ProcessCount.ToString(),
                    ["LOCAL_RANK"] = rank.ToString(), ["LOCAL_WORLD_SIZE"] = options.ProcessCount.ToString(),
                    ["MASTER_ADDR"] = "127.0.0.1", ["MASTER_PORT"] = port.ToString(),
                };
                processes.Add(Start(options.Program, options.Arguments, options, variables, output, rank, ThreadDefaults(options)));
            }
            var exits = processes.Select((p, rank) => p.WaitForExitAsync(CancellationToken.None).ContinueWith(_ => rank)).ToList();
            Task deadline = options.Timeout is { } limit ? Task.Delay(limit, cancellation) : Task.Delay(Timeout.Infinite, cancellation);
            int? failedRank = null;
            int exitCode = 0;
            bool timedOut = false;
            var running = new List<Task<int>>(exits);
            while (running.Count > 0)
            {
                Task finished = await Task.WhenAny(running.Cast<Task>().Append(deadline)).ConfigureAwait(false);
                if (finished == deadline)
                {
                    timedOut = !cancellation.IsCancellationRequested;
                    exitCode = 124;
                    break;
                }
                var exited = (Task<int>)finished;
                running.Remove(exited);
                int rank = await exited.ConfigureAwait(false);
                if (processes[rank].ExitCode != 0 && failedRank is null)
                {
                    failedRank = rank;
                    exitCode = processes[rank].ExitCode;
                    output.Add(new RankOutputLine(-1, true,
                        $"osprey launcher: rank {rank} exited with code {exitCode}; stopping the other ranks"));
                    break;
                }
            }
            KillAll(processes);
            foreach (Process process in processes) await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            return new LaunchResult(exitCode, watch.Elapsed, output.Lines, failedRank, timedOut);
        }
        finally
        {
            KillAll(processes);
            foreach (Process process in processes) process.Dispose();
        }
    }

    // defaults: variables set only where neither this process's environment nor the options give them a value.
    static Process Start(string program, IEnumerable<string> arguments, LaunchOptions options,
        IReadOnlyDictionary<string, string>? rankVariables, OutputCollector output, int rank,
        IReadOnlyDictionary<string, string>? defaults = null)
    {
        var info = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = options.WorkingDirectory ?? System.Environment.CurrentDirectory,
        };
        foreach (string argument in arguments) info.ArgumentList.Add(argument);
        foreach (var (name, value) in options.Environment ?? new Dictionary<string, string>()) info.Environment[name] = value;
        foreach (var (name, value) in rankVariables ?? new Dictionary<string, string>()) info.Environment[name] = value;
        foreach (var (name, value) in defaults ?? new Dictionary<string, string>())
            if (!(info.Environment.TryGetValue(name, out string? given) && given is { Length: > 0 })) info.Environment[name] = value;
        var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) output.Add(new RankOutputLine(rank, false, e.Data)); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) output.Add(new RankOutputLine(rank, true, e.Data)); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    // Returns true on timeout (after killing the process tree).
    static async Task<bool> WaitAsync(Process process, TimeSpan? timeout, CancellationToken cancellation)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        if (timeout is { } t) limit.CancelAfter(t);
        try
        {
            await process.WaitForExitAsync(limit.Token).ConfigureAwait(false);
            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false); // drains the output readers
            return false;
        }
        catch (OperationCanceledException)
        {
            KillAll(new[] { process });
            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            return !cancellation.IsCancellationRequested;
        }
    }

    static void KillAll(IEnumerable<Process> processes)
    {
        foreach (Process process in processes)
        {
            try
            {
                if (!process.HasExited) process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException) { } // exited meanwhile
        }
    }

    /// <summary>A TCP port on loopback that was free a moment ago.</summary>
    internal static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    /// <summary>The rank mpirun blames: "process rank 1 with PID …" or "MPI_ABORT was invoked on rank 0".</summary>
    public static int? ParseMpirunFailedRank(string mpirunOutput)
    {
        Match match = MpirunFailedRank().Match(mpirunOutput);
        return match.Success ? int.Parse(match.Groups[1].Value.Length > 0 ? match.Groups[1].Value : match.Groups[2].Value) : null;
    }

    [GeneratedRegex(@"process rank (\d+) with PID|MPI_ABORT was invoked on rank (\d+)")]
    private static partial Regex MpirunFailedRank();

    sealed class OutputCollector(Action<RankOutputLine>? sink)
    {
        readonly List<RankOutputLine> lines = new();

        public IReadOnlyList<RankOutputLine> Lines { get { lock (lines) return lines.ToArray(); } }

        public string Text { get { lock (lines) return string.Join('\n', lines.Select(l => l.Text)); } }

        public void Add(RankOutputLine line)
        {
            lock (lines) lines.Add(line);
            sink?.Invoke(line);
        }
    }
}
