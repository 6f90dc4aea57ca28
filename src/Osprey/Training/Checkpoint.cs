using System.IO.Compression;
using System.Text.Json;
using Osprey.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>Where a run stands: everything besides tensors that a resume needs.</summary>
/// <param name="Epoch">Epochs completed (the next epoch to run, 0-based).</param>
/// <param name="BatchInEpoch">Batches of <paramref name="Epoch"/> already done (0 at an epoch boundary).</param>
/// <param name="Iteration">Global micro-batch counter (Ultralytics' <c>ni</c>).</param>
/// <param name="LastOptimizerIteration">Iteration of the last optimiser step (for gradient accumulation).</param>
/// <param name="BestFitness">Best fitness so far (null before the first validation).</param>
/// <param name="EpochsWithoutImprovement">For <c>patience</c>.</param>
/// <param name="EmaUpdates">The EMA's update count.</param>
/// <param name="Args">The run's args.yaml text.</param>
/// <param name="RunDirectory">The run folder.</param>
/// <param name="EpochMeanLosses">Mid-epoch checkpoints: the epoch's running mean train losses so far (box, cls, dfl).</param>
/// <param name="EpochBatchesSeen">Mid-epoch checkpoints: batches averaged into <paramref name="EpochMeanLosses"/>.</param>
/// <param name="LossScaler">fp16 loss scaling's state, or null.</param>
/// <param name="World">Ranks of the run that wrote it (0: a checkpoint from before this was recorded).</param>
/// <param name="Batch">Its global batch (0: the one in <paramref name="Args"/>; a resume may change it).</param>
public sealed record TrainingState(int Epoch, int BatchInEpoch, long Iteration, long LastOptimizerIteration,
    double? BestFitness, int EpochsWithoutImprovement, long EmaUpdates, string Args, string RunDirectory,
    double[]? EpochMeanLosses = null, int EpochBatchesSeen = 0, LossScalerState? LossScaler = null, int World = 0, int Batch = 0);

/// <summary>
/// The full-state checkpoint: model, EMA, optimiser, the loss terms' trainable modules (distillation's projector), the
/// torch RNG and <see cref="TrainingState"/>, in one
/// uncompressed zip written atomically (a crash mid-save leaves the previous checkpoint intact).
/// </summary>
public static class Checkpoint
{
    const string StateEntry = "state.json";
    const string ModelEntry = "model.bin";
    const string EmaEntry = "ema.bin";
    const string OptimizerEntry = "optimizer.bin";
    const string RngEntry = "torch_rng.bin";

    /// <summary>Writes the checkpoint to <paramref name="path"/>.</summary>
    /// <param name="terms">The loss terms' trainable modules (distillation's projector), each in an entry of its own; none
    /// for a plain run.</param>
    public static void Save(string path, nn.Module model, nn.Module ema, GroupedOptimizer optimizer,
        TrainingState state, IReadOnlyList<(string Name, nn.Module Module)>? terms = null)
    {
        AtomicFile.Write(path, stream =>
        {
            using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
            WriteEntry(zip, StateEntry, s => JsonSerializer.Serialize(s, state));
            WriteEntry(zip, ModelEntry, s => { using var w = new BinaryWriter(s); model.save(w); });
            WriteEntry(zip, EmaEntry, s => { using var w = new BinaryWriter(s); ema.save(w); });
            WriteEntry(zip, OptimizerEntry, s => { using var w = new BinaryWriter(s); optimizer.Save(w); });
            foreach (var (name, module) in terms ?? Array.Empty<(string, nn.Module)>())
                WriteEntry(zip, TermEntry(name), s => { using var w = new BinaryWriter(s); module.save(w); });
            WriteEntry(zip, RngEntry, s =>
            {
                using var rng = torch.random.get_rng_state();
                s.Write(rng.bytes);
            });
        });
    }

    static string TermEntry(string name) => $"term_{name}.bin";

    /// <summary>Reads only the <see cref="TrainingState"/> (to find the run folder and args before building).</summary>
    public static TrainingState ReadState(string path)
    {
        using var zip = Open(path);
        using var stream = Entry(zip, path, StateEntry).Open();
        return JsonSerializer.Deserialize<TrainingState>(stream)
            ?? throw new InvalidDataException($"{path}: empty training state");
    }

    /// <summary>Restores model, EMA, optimiser and RNG in place and returns the state.</summary>
    public static TrainingState Load(string path, nn.Module model, nn.Module ema, GroupedOptimizer optimizer,
        IReadOnlyList<(string Name, nn.Module Module)>? terms = null)
    {
        using var zip = Open(path);
        TrainingState state;
        using (var stream = Entry(zip, path, StateEntry).Open())
            state = JsonSerializer.Deserialize<TrainingState>(stream) ?? throw new InvalidDataException($"{path}: empty training state");
        ReadEntry(zip, path, ModelEntry, r => LoadInPlace(model, r, $"{path} ({ModelEntry})"));
        ReadEntry(zip, path, EmaEntry, r => LoadInPlace(ema, r, $"{path} ({EmaEntry})"));
        ReadEntry(zip, path, OptimizerEntry, r => optimizer.Load(r));
        foreach (var (name, module) in terms ?? Array.Empty<(string, nn.Module)>())
            ReadEntry(zip, path, TermEntry(name), r => LoadInPlace(module, r, $"{path} ({TermEntry(name)})"));
        using (var stream = new MemoryStream())
        {
            using (var entry = Entry(zip, path, RngEntry).Open()) entry.CopyTo(stream);
            using var rng = torch.tensor(stream.ToArray(), dtype: ScalarType.Byte);
            torch.random.set_rng_state(rng);
        }
        return state;
    }

    /// <summary>
    /// Reads what <c>Module.save</c> wrote (an LEB128 count, then each state-dict key and tensor) into
    /// <paramref name="module"/>'s own tensors with <c>copy_</c>. TorchSharp's <c>Module.load</c> moves a module that is
    /// not on the CPU there and back, which makes new Parameter objects: the optimiser's groups and the flat layout would
    /// then hold the old ones. Here every parameter and buffer stays the object it was, on its device.
    /// </summary>
    internal static void LoadInPlace(nn.Module module, BinaryReader reader, string what)
    {
        var state = module.state_dict();
        long count = DecodeLeb128(reader);
        if (count != state.Count)
            throw new InvalidDataException($"{what}: {count} tensors saved, the model has {state.Count}: not this model's checkpoint");
        using var noGrad = torch.no_grad();
        for (long i = 0; i < count; i++)
        {
            string key = reader.ReadString();
            if (!state.TryGetValue(key, out var target))
                throw new InvalidDataException($"{what}: tensor '{key}' is not in the model: not this model's checkpoint");
            using var host = torch.empty(target.shape, dtype: target.dtype);
            host.Load(reader);
            target.copy_(host);
        }
    }

    // TorchSharp's LEB128 count (unsigned, 7 bits a byte, low first).
    static long DecodeLeb128(BinaryReader reader)
    {
        long value = 0;
        for (int shift = 0; shift < 64; shift += 7)
        {
            byte b = reader.ReadByte();
            value |= (long)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return value;
        }
        throw new InvalidDataException("a malformed count in the checkpoint");
    }

    static ZipArchive Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"checkpoint {path} not found", path);
        try
        {
            return ZipFile.OpenRead(path);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path} is not an Osprey checkpoint ({e.Message})", e);
        }
    }

    static ZipArchiveEntry Entry(ZipArchive zip, string path, string name) =>
        zip.GetEntry(name) ?? throw new InvalidDataException($"{path} is not a complete Osprey checkpoint: '{name}' is missing");

    static void WriteEntry(ZipArchive zip, string name, Action<Stream> write)
    {
        using var stream = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
        write(stream);
    }

    static void ReadEntry(ZipArchive zip, string path, string name, Action<BinaryReader> read)
    {
        // TorchSharp's loaders seek, and zip entry streams cannot: read the entry into memory first.
        using var buffer = new MemoryStream();
        using (var entry = Entry(zip, path, name).Open()) entry.CopyTo(buffer);
        buffer.Position = 0;
        using var reader = new BinaryReader(buffer);
        read(reader);
    }
}
