using System.Runtime.InteropServices;
using Osprey.Config;
using Osprey.Serving;
using Spectre.Console;

namespace Osprey.Cli;

/// <summary>
/// <c>osprey serve model=… [source=list.streams] [port=8080] [host=127.0.0.1] [max_batch=16] [max_delay_ms=5] [max_queue=64]
/// [watch=True] [backend=auto]</c>: loads the model (on the CPU a weights file is exported to ONNX and served in ONNX
/// Runtime, see <see cref="ServeBackend"/>), listens, adds the streams of <c>source=</c>, prints the URL and one line per
/// load, swap, refused load and stream added, refused, ended or removed, and runs until Ctrl+C or SIGTERM, then stops
/// cleanly (the requests in flight and the queued images are answered first).
/// </summary>
/// <param name="stop">Also stops the server when cancelled (for callers that embed the command, such as tests).</param>
public sealed class ServeCommand(CancellationToken stop = default) : ICliCommand
{
    public string Name => "serve";
    public string Description => "serve a model over HTTP: POST /v1/detect, streams with SSE and MJPEG out, a page at /, hot swap, /metrics (model=… [source=…] [port=8080] [host=127.0.0.1])";

    public int Execute(OspreyArgs args, IAnsiConsole output)
    {
        var options = ServeOptions.FromArgs(args);
        var gate = new object();
        void Print(string line)
        {
            lock (gate) output.WriteLine(line);
        }

        using var signalled = CancellationTokenSource.CreateLinkedTokenSource(stop);
        void OnCancelKey(object? sender, ConsoleCancelEventArgs e)
        {
            e.Cancel = true;              // stop cleanly rather than die
            signalled.Cancel();
        }
        Console.CancelKeyPress += OnCancelKey;
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            signalled.Cancel();
        });
        try
        {
            var server = OspreyServer.StartAsync(options, e => Print(Render(e))).GetAwaiter().GetResult();
            var model = server.Models.Current!;
            Print($"osprey serve: {server.Url}  model v{model.Version} {model.Path} ({model.Backend}, imgsz {model.ImageSize}, " +
                  $"{model.Names.Count} classes), max_batch={options.MaxBatch} max_delay_ms={options.MaxDelay.TotalMilliseconds} " +
                  $"max_queue={options.MaxQueue}, {server.Streams.All.Count} stream{(server.Streams.All.Count == 1 ? "" : "s")}; " +
                  $"the page: {server.Url}/; Ctrl+C stops");
            signalled.Token.WaitHandle.WaitOne();
            server.StopAsync().GetAwaiter().GetResult();
            return 0;
        }
        finally
        {
            Console.CancelKeyPress -= OnCancelKey;
        }
    }

    static string Render(ServeEvent e) => e.Kind switch
    {
        ServeEventKind.LoadRefused => $"refused: {e.Message} (still serving v{e.Model?.Version})",
        ServeEventKind.StreamRefused => $"stream refused: {e.Message}",
        _ => e.Message,
    };
}
