using System.Collections;
using System.IO.Compression;
using System.Text;
using Osprey.Models;
using Razorvine.Pickle;
using static TorchSharp.torch;

namespace Osprey.Interop;

/// <summary>What a <c>save_pt</c> checkpoint says besides the weights.</summary>
/// <param name="Epoch">The epoch just finished (0-based, as Ultralytics' <c>epoch</c>).</param>
/// <param name="BestFitness">The best fitness so far, or null.</param>
/// <param name="TrainArgs">The run's arguments (args.yaml as a dict).</param>
public sealed record CheckpointMetadata(int Epoch, double? BestFitness, IReadOnlyDictionary<string, object?> TrainArgs);

/// <summary>
/// Writes a checkpoint that Python's <c>torch.load(f, weights_only=True)</c> reads without Osprey or Ultralytics classes
/// (docs/interop.md): torch.save's zip layout (<c>archive/data.pkl</c>, <c>archive/byteorder</c>, <c>archive/data/0…</c>,
/// <c>archive/version</c>, stored) around a protocol-2 pickle of a dict of plain data: <c>date</c>, <c>version</c>,
/// <c>epoch</c>, <c>best_fitness</c>, <c>model_state</c> (an OrderedDict of fp32 CPU tensors, Ultralytics' keys),
/// <c>names</c> ({0: 'person', …}), <c>nc</c>, <c>yaml</c> (the model's architecture dict, as Ultralytics' <c>model.yaml</c>)
/// and <c>train_args</c>. The only globals are those of torch's weights-only allow-list: <c>collections.OrderedDict</c>,
/// <c>torch._utils._rebuild_tensor_v2</c> and <c>torch.FloatStorage</c>/<c>LongStorage</c>. Razorvine's Pickler writes
/// it: torch's persistent ids for storages come from its <c>persistentId</c> hook, the rebuild calls from registered
/// deconstructors, so no hand-written pickle is needed.
/// </summary>
public static class UltralyticsCheckpointWriter
{
    private static readonly object RegistrationLock = new();
    private static bool _registered;

    /// <summary>Writes <paramref name="model"/>'s weights (fp32) and <paramref name="metadata"/> to <paramref name="path"/>, atomically.</summary>
    public static void Save(DetectionModel model, string path, CheckpointMetadata metadata)
    {
        EnsureRegistered();
        Osprey.IO.AtomicFile.WriteVia(path, temporary =>
        {
            using var scope = NewDisposeScope();
            var state = model.state_dict().Select(kv => (kv.Key, Tensor: Cpu(kv.Value))).ToList();
            var root = new Dictionary<string, object?>
            {
                ["date"] = DateTime.Now.ToString("yyyy-MM-ddTHH:mm:ss.ffffff", System.Globalization.CultureInfo.InvariantCulture),
                ["version"] = "osprey " + (typeof(UltralyticsCheckpointWriter).Assembly.GetName().Version?.ToString() ?? "0"),
                ["epoch"] = metadata.Epoch,
                ["best_fitness"] = metadata.BestFitness,
                ["model_state"] = new StateDict(state.Select(s => new object[] { s.Key, new TensorRef(s.Tensor) }).ToList()),
                ["names"] = model.Names.Select((name, i) => (i, name)).ToDictionary(p => p.i, p => p.name),
                ["nc"] = model.Nc,
                ["yaml"] = CheckpointYaml.ToDict(model.Config.ToPinnedYaml()),
                ["train_args"] = metadata.TrainArgs.ToDictionary(kv => kv.Key, kv => kv.Value),
            };
            using var file = File.Create(temporary);
            using var zip = new ZipArchive(file, ZipArchiveMode.Create);
            var pickler = new StoragePickler();
            using var pickle = new MemoryStream();
            pickler.dump(root, pickle);
            Entry(zip, "archive/data.pkl", pickle.ToArray());
            Entry(zip, "archive/byteorder", "little"u8.ToArray());
            foreach (var (key, tensor) in pickler.Storages) Entry(zip, $"archive/data/{key}", tensor.bytes.ToArray());
            Entry(zip, "archive/version", "3\n"u8.ToArray());
        });
    }

    private static Tensor Cpu(Tensor tensor)
    {
        var cpu = tensor.detach().cpu();
        return (cpu.is_floating_point() ? cpu.to_type(ScalarType.Float32) : cpu).contiguous();
    }

    private static void Entry(ZipArchive zip, string name, byte[] bytes)
    {
        using var stream = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
        stream.Write(bytes);
    }

    private static void EnsureRegistered()
    {
        lock (RegistrationLock)
        {
            if (_registered) return;
            Pickler.registerCustomDeconstructor(typeof(StateDict), new Deconstructor("collections", "OrderedDict",
                o => new object[] { new ArrayList(((StateDict)o).Items) }));
            Pickler.registerCustomDeconstructor(typeof(EmptyOrderedDict), new Deconstructor("collections", "OrderedDict", _ => Array.Empty<object>()));
            // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks)
            Pickler.registerCustomDeconstructor(typeof(TensorRef), new Deconstructor("torch._utils", "_rebuild_tensor_v2", o =>
            {
                var tensor = ((TensorRef)o).Tensor;
                return new object[] { new StorageRef(tensor), 0, Ints(tensor.shape), Ints(tensor.stride()), false, new EmptyOrderedDict() };
            }));
            Pickler.registerCustomPickler(typeof(StorageType), new StorageTypePickler());
            _registered = true;
        }
    }

    private static object[] Ints(long[] values) => values.Select(v => (object)checked((int)v)).ToArray();

    private sealed record StateDict(List<object[]> Items);

    private sealed record TensorRef(Tensor Tensor);

    private sealed record StorageRef(Tensor Tensor);

    private sealed record StorageType(string Name);

    private sealed class EmptyOrderedDict;

    private sealed class Deconstructor(string module, string name, Func<object, object[]> arguments) : IObjectDeconstructor
    {
        public string get_module() => module;
        public string get_name() => name;
        public object[] deconstruct(object obj) => arguments(obj);
    }

    // GLOBAL 'torch FloatStorage' (a class, not called: the storage's type in its persistent id).
    private sealed class StorageTypePickler : IObjectPickler
    {
        public void pickle(object o, Stream outs, Pickler currentPickler)
        {
            outs.WriteByte(Opcodes.GLOBAL);
            outs.Write(Encoding.ASCII.GetBytes($"torch\n{((StorageType)o).Name}\n"));
        }
    }

    // torch.save's persistent id of a storage: ('storage', torch.FloatStorage, '<key>', 'cpu', numel); the bytes go to data/<key>.
    private sealed class StoragePickler : Pickler
    {
        public List<(string Key, Tensor Tensor)> Storages { get; } = new();

        protected override bool persistentId(object pid, out object? newpid)
        {
            newpid = null;
            if (pid is not StorageRef storage) return false;
            string key = Storages.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            Storages.Add((key, storage.Tensor));
            string type = storage.Tensor.dtype switch
            {
                ScalarType.Float32 => "FloatStorage", ScalarType.Int64 => "LongStorage", ScalarType.Int32 => "IntStorage",
                var other => throw new InvalidOperationException($"save_pt: unexpected {other} tensor"),
            };
            newpid = new object[] { "storage", new StorageType(type), key, "cpu", checked((int)storage.Tensor.numel()) };
            return true;
        }
    }
}
