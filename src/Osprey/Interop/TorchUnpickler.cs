using System.IO.Compression;
using System.Runtime.CompilerServices;
using Razorvine.Pickle;
using Razorvine.Pickle.Objects;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Interop;

/// <summary>
/// Reads a <c>torch.save</c> file (a zip: <c>&lt;name&gt;/data.pkl</c>, the storages as <c>&lt;name&gt;/data/&lt;key&gt;</c>) with
/// Razorvine.Pickle under <see cref="PickleGlobals"/>' restricted class map: tensors become TorchSharp tensors (in their
/// stored dtype, on the CPU, created in the caller's dispose scope), OrderedDicts <see cref="PickledDict"/>s, module
/// classes Razorvine's <see cref="ClassDict"/> (their <c>__dict__</c>), numbers, strings, lists, tuples and dicts .NET's.
/// </summary>
public sealed class TorchUnpickler : Unpickler
{
    private static readonly object RegistrationLock = new();
    private static bool _registered;

    // Razorvine's constructor table is static and shared with TorchSharp.PyBridge (which registers its own rebuilders
    // for the same names): ours are routed in while one of our loads runs on this thread, PyBridge's otherwise.
    [ThreadStatic] private static bool _active;

    // Every tensor the running load made (storages and rebuilt tensors), handed to its caller to dispose.
    [ThreadStatic] private static List<Tensor>? _created;

    private readonly ZipArchive _archive;
    private readonly string _prefix;
    private readonly string _source;
    private readonly Dictionary<string, Tensor> _storages = new();

    private TorchUnpickler(ZipArchive archive, string prefix, string source)
    {
        _archive = archive;
        _prefix = prefix;
        _source = source;
    }

    /// <summary>Unpickles the file at <paramref name="path"/>; errors name it. Dispose the result to free its tensors.</summary>
    /// <exception cref="InvalidDataException">Not a torch.save zip, a refused global, or a malformed pickle.</exception>
    public static UnpickledFile Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"'{path}' not found.", path);
        using var stream = File.OpenRead(path);
        Span<byte> magic = stackalloc byte[4];
        if (stream.Read(magic) < 4 || magic[0] != 'P' || magic[1] != 'K')
            throw new InvalidDataException($"{path}: not a torch.save zip (the legacy pre-1.6 format is not read; re-save it with a newer torch).");
        stream.Position = 0;
        using var archive = OpenZip(stream, path);
        var pkl = archive.Entries.FirstOrDefault(e => e.FullName.EndsWith("data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1)
            ?? throw new InvalidDataException($"{path}: a zip without <name>/data.pkl is not a torch.save file.");
        string prefix = pkl.FullName[..^"data.pkl".Length];
        if (archive.GetEntry(prefix + "byteorder") is { } order && ReadText(order).Trim() != "little")
            throw new InvalidDataException($"{path}: big-endian torch.save files are not read.");
        byte[] bytes = ReadBytes(pkl);
        PickleGlobals.Check(bytes, path);
        EnsureRegistered();
        var created = new List<Tensor>();
        (_active, _created) = (true, created);
        bool done = false;
        try
        {
            var file = new UnpickledFile(new TorchUnpickler(archive, prefix, path).loads(bytes), created);
            done = true;
            return file;
        }
        catch (Exception e) when (e is not (InvalidDataException or IOException or OutOfMemoryException))
        {
            throw new InvalidDataException($"{path}: malformed pickle ({e.Message}).", e);
        }
        finally
        {
            (_active, _created) = (false, null);
            if (!done) foreach (var tensor in created) tensor.Dispose();
        }
    }

    private static ZipArchive OpenZip(Stream stream, string path)
    {
        try
        {
            return new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: not a readable torch.save zip ({e.Message}).", e);
        }
    }

    /// <summary>torch.save's persistent id of a storage: ('storage', storage type, key, location, numel).</summary>
    protected override object persistentLoad(object pid)
    {
        if (pid is not object[] { Length: >= 5 } id || id[0] is not string kind || kind != "storage" || id[1] is not ClassDictConstructor type)
            throw new InvalidDataException($"{_source}: unknown persistent id (only torch storages are read).");
        string key = (string)id[2];
        if (_storages.TryGetValue(key, out var cached)) return cached;
        var dtype = StorageType(type.name);
        var entry = _archive.GetEntry($"{_prefix}data/{key}") ?? throw new InvalidDataException($"{_source}: storage data/{key} is missing.");
        byte[] bytes = ReadBytes(entry);
        long numel = Convert.ToInt64(id[4]);
        var storage = Track(empty(numel, dtype));
        if (bytes.Length != storage.ElementSize * numel)
            throw new InvalidDataException($"{_source}: storage data/{key} has {bytes.Length} bytes, expected {storage.ElementSize * numel}.");
        if (numel > 0) storage.bytes = bytes;
        return _storages[key] = storage;
    }

    /// <summary>Hands a tensor made while unpickling to the running load's result (which disposes it).</summary>
    internal static Tensor Track(Tensor tensor)
    {
        _created?.Add(tensor);
        return tensor;
    }

    private ScalarType StorageType(string name) => name switch
    {
        "DoubleStorage" => ScalarType.Float64, "FloatStorage" => ScalarType.Float32, "HalfStorage" => ScalarType.Float16,
        "BFloat16Storage" => ScalarType.BFloat16, "LongStorage" => ScalarType.Int64, "IntStorage" => ScalarType.Int32,
        "ShortStorage" => ScalarType.Int16, "CharStorage" => ScalarType.Int8, "ByteStorage" => ScalarType.Byte,
        "BoolStorage" => ScalarType.Bool,
        _ => throw new InvalidDataException($"{_source}: unsupported storage type torch.{name}."),
    };

    private static byte[] ReadBytes(ZipArchiveEntry entry)
    {
        using var input = entry.Open();
        var bytes = new byte[entry.Length];
        input.ReadExactly(bytes);
        return bytes;
    }

    private static string ReadText(ZipArchiveEntry entry) => System.Text.Encoding.ASCII.GetString(ReadBytes(entry));

    // Our constructors, routed in Razorvine's static table (PyBridge's registrations run first, so they never replace ours).
    private static void EnsureRegistered()
    {
        lock (RegistrationLock)
        {
            if (_registered) return;
            var pyBridge = typeof(TorchSharp.PyBridge.Safetensors).Assembly.GetType("TorchSharp.PyBridge.PyTorchUnpickler");
            if (pyBridge is not null) RuntimeHelpers.RunClassConstructor(pyBridge.TypeHandle);
            foreach (var (global, constructor) in PickleConstructors.All)
            {
                int dot = global.LastIndexOf('.');
                objectConstructors.TryGetValue(global, out var previous);
                registerConstructor(global[..dot], global[(dot + 1)..], new Routed(constructor, previous ?? new ClassDictConstructor(global[..dot], global[(dot + 1)..])));
            }
            _registered = true;
        }
    }

    private sealed class Routed(IObjectConstructor ours, IObjectConstructor theirs) : IObjectConstructor
    {
        public object construct(object[] args) => _active ? ours.construct(args) : theirs.construct(args);
    }
}

/// <summary>An unpickled torch.save file: the root object and the tensors it holds (disposed with it).</summary>
public sealed class UnpickledFile(object? root, IReadOnlyList<Tensor> tensors) : IDisposable
{
    /// <summary>What was pickled (a dict for checkpoints and state dicts).</summary>
    public object? Root { get; } = root;

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var tensor in tensors) tensor.Dispose();
    }
}
