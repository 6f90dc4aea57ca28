using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;
using Osprey.Config;
using Osprey.Training;
using Spectre.Console;

namespace Osprey.Cli;

/// <summary><c>osprey train data=… [model=yolov8n.yaml] [epochs=…] …</c>: trains and renders progress.</summary>
public sealed class TrainCommand : ICliCommand
{
    public string Name => "train";
    public string Description => "train a detector (data=coco8.yaml or data=shapes, model=yolov8n.yaml, epochs=…)";

    public int Execute(OspreyArgs args, IAnsiConsole output)
    {
        // The trainer runs on its own thread; this thread renders its events (the library never prints).
        using var queue = new BlockingCollection<TrainingEvent>();
        Exception? failure = null;
        var worker = new Thread(() =>
        {
            try
            {
                new Trainer(args, queue.Add).Train();
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
        new TrainingRenderer(output).Render(queue.GetConsumingEnumerable());
        worker.Join();
        if (failure is not null) ExceptionDispatchInfo.Capture(failure).Throw();
        return 0;
    }
}
