using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using Osprey.Config;
using Osprey.Distributed;
using Osprey.Training;
using Spectre.Console;

namespace Osprey.Cli;

/// <summary>
/// <c>osprey train data=… [model=yolov8n.yaml] [epochs=…] …</c>: trains and renders progress. With <c>nproc=N</c>
/// (CPU) or <c>device=0,1,…</c> it launches the ranks (running this same program) and waits for them; started by
/// mpirun, torchrun or srun it is one rank (rank 0 renders, the others stay quiet).
/// </summary>
public sealed class TrainCommand : ICliCommand
{
    public string Name => "train";
    public string Description => "train a detector (data=coco8.yaml or data=shapes, model=yolov8n.yaml, epochs=…, nproc=N)";

    public int Execute(OspreyArgs args, IAnsiConsole output)
    {
        var environment = DistributedEnvironment.FromProcess();
        if (DistributedLaunch.ShouldLaunch(args, environment)) return Launch(args, output);

        // The trainer runs on its own thread; this thread renders its events (the library never prints).
        using var queue = new BlockingCollection<TrainingEvent>();
        Exception? failure = null;
        var worker = new Thread(() =>
        {
            try
            {
                new Trainer(args, queue.Add, environment, message => Console.Error.WriteLine($"osprey: {message}")).Train();
            }
            catch (Exception e)
            {
                failure = e;
            }
            finally
            {
                queue.CompleteAdding();
            }
        }) { Name = "osprey-train", IsBackground = true };
        worker.Start();
        if (environment.IsMaster) new TrainingRenderer(output).Render(queue.GetConsumingEnumerable());
        else foreach (var _ in queue.GetConsumingEnumerable()) { }
        worker.Join();
        if (failure is not null) ExceptionDispatchInfo.Capture(failure).Throw();
        return 0;
    }

    static int Launch(OspreyArgs args, IAnsiConsole output)
    {
        var gate = new object();
        string dll = typeof(TrainCommand).Assembly.Location;
        var result = DistributedLaunch.RunAsync(args, LocalLauncher.DotnetHost, new[] { dll, "train" }, line =>
        {
            lock (gate)
            {
                if (line.IsError) Console.Error.WriteLine(line.Text);
                else Console.Out.WriteLine(line.Text);
            }
        }).GetAwaiter().GetResult();
        if (result.ExitCode != 0)
            throw new DistributedException(result.Message ??
                $"training failed: rank {result.FailedRank?.ToString() ?? "?"} ended the job (exit {result.ExitCode}) " +
                $"after {result.Restarts} restart(s); run folder {result.RunDirectory}");
        return 0;
    }
}
