using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Osprey.Config;
using Osprey.Distributed;
using Osprey.Tuning;
using Spectre.Console;

namespace Osprey.Cli;

/// <summary>
/// <c>osprey tune data=… [model=…] [epochs=…] [iterations=10] [search=genetic|asha] [space=space.yaml] [trials_at_once=…]
/// [grace_period=10] [hostfile=…] [resume=True]</c> plus every train argument: runs the <see cref="Tuner"/> on a thread of
/// its own and renders its events (a live table on a terminal, a line per event otherwise). Each trial is
/// <c>osprey tune-trial</c> (<see cref="TuneTrialCommand"/>) in a process of its own.
/// </summary>
public sealed class TuneCommand : ICliCommand
{
    public string Name => "tune";
    public string Description => "tune hyperparameters over many train runs at once (search=genetic|asha, iterations=…, trials_at_once=…, resume=True)";

    public int Execute(OspreyArgs args, IAnsiConsole output)
    {
        var program = new TrialProgram(LocalLauncher.DotnetHost, new[] { typeof(TuneCommand).Assembly.Location, "tune-trial" });
        using var queue = new BlockingCollection<TuneEvent>();
        Exception? failure = null;
        TuneFinished? finished = null;
        var worker = new Thread(() =>
        {
            try
            {
                finished = new Tuner(args, program, events: queue.Add).Run();
            }
            catch (Exception e)
            {
                failure = e;
            }
            finally
            {
                queue.CompleteAdding();
            }
        }) { Name = "osprey-tune", IsBackground = true };
        worker.Start();
        new TuneRenderer(output).Render(queue.GetConsumingEnumerable());
        worker.Join();
        if (failure is not null) ExceptionDispatchInfo.Capture(failure).Throw();
        if (finished!.Trials.All(t => t.Status == TrialStatus.Failed))
            throw new InvalidOperationException($"every trial failed: see {Path.Combine(finished.Directory, "trials", "trial0", "train.log")}");
        return 0;
    }
}

/// <summary>
/// <c>osprey tune-trial …</c>: one trial of <c>osprey tune</c>, which is <c>osprey train</c> with the same arguments and a
/// lifeline: when its standard input closes (the tuner stopped it, or the tuner died), it kills its children (a
/// data-parallel trial's ranks) and itself at once. Not for use by hand: from a terminal, it ends on Ctrl-D.
/// </summary>
public sealed class TuneTrialCommand : ICliCommand
{
    public string Name => "tune-trial";
    public string Description => "one trial of osprey tune (osprey train that ends when its standard input closes)";

    public int Execute(OspreyArgs args, IAnsiConsole output)
    {
        new Thread(WatchLifeline) { Name = "osprey-lifeline", IsBackground = true }.Start();
        return new TrainCommand().Execute(args, output);
    }

    static void WatchLifeline()
    {
        try
        {
            using var input = Console.OpenStandardInput();
            var buffer = new byte[64];
            while (input.Read(buffer, 0, buffer.Length) > 0) { }
        }
        catch (IOException) { }
        foreach (int child in ProcessTree.Descendants(Environment.ProcessId))
        {
            try
            {
                using var process = Process.GetProcessById(child);
                process.Kill();
            }
            catch (ArgumentException) { }           // gone meanwhile
            catch (InvalidOperationException) { }
        }
        Process.GetCurrentProcess().Kill();          // SIGKILL: files are written atomically, nothing to tidy
    }
}

/// <summary>The descendants of a process, from Linux's /proc.</summary>
static class ProcessTree
{
    /// <summary>Every descendant of <paramref name="root"/>, children before grandchildren.</summary>
    public static IReadOnlyList<int> Descendants(int root)
    {
        var children = new Dictionary<int, List<int>>();
        foreach (string folder in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(folder), out int pid)) continue;
            try
            {
                string stat = File.ReadAllText(Path.Combine(folder, "stat"));
                // pid (comm) state ppid …: comm may hold spaces and parentheses, so read after the last ')'
                string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                int parent = int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture);
                if (!children.TryGetValue(parent, out var list)) children[parent] = list = new List<int>();
                list.Add(pid);
            }
            catch (IOException) { }                 // exited while we looked
            catch (UnauthorizedAccessException) { }
        }
        var result = new List<int>();
        var queue = new Queue<int>(new[] { root });
        while (queue.TryDequeue(out int pid))
            foreach (int child in children.GetValueOrDefault(pid) ?? new List<int>())
            {
                result.Add(child);
                queue.Enqueue(child);
            }
        return result;
    }
}
