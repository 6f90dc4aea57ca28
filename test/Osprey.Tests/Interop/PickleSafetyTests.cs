using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using Osprey.Interop;
using Osprey.Models;
using Osprey.Tests.Models;

namespace Osprey.Tests.Interop;

/// <summary>
/// The restricted class map: a <c>.pt</c> whose pickle names a global outside it is refused whole, with the global
/// named, before anything is unpickled; nothing in it runs. The payloads are live: Python's own pickle runs them (the
/// control test), creating the marker file that Osprey's load must not.
/// </summary>
public class PickleSafetyTests
{
    public static TheoryData<string, string> Payloads => new()
    {
        { "os.system", "os.system" },                      // GLOBAL 'os system' + REDUCE, protocol 2
        { "__builtin__.eval", "__builtin__.eval" },        // builtins.eval as protocol 2 names it
        { "subprocess.check_call", "subprocess.check_call" }, // STACK_GLOBAL from memoised strings, protocol 4
        { "after-a-checkpoint", "posix.system" },          // a valid checkpoint dict first, the payload in its last value
    };

    [Theory]
    [MemberData(nameof(Payloads))]
    public void UnknownCallableIsRefusedNamedAndNotRun(string kind, string global)
    {
        string dir = TestModels.TempDir();
        try
        {
            string marker = Path.Combine(dir, "pwned");
            string pt = WritePt(dir, Payload(kind, marker));
            var error = Assert.Throws<InvalidDataException>(() => ModelFactory.Create(pt));
            Assert.Contains($"'{global}'", error.Message);
            Assert.Contains(pt, error.Message);
            Assert.Contains("never run", error.Message);
            Thread.Sleep(200);                              // a spawned shell would have had time to touch it
            Assert.False(File.Exists(marker));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Control: Python's pickle does run each payload (it creates the marker), so the test above means something.</summary>
    [SkippableTheory]
    [MemberData(nameof(Payloads))]
    public void PayloadsRunInPython(string kind, string global)
    {
        Skip.IfNot(File.Exists("/usr/bin/python3"), "/usr/bin/python3 is not installed");
        string dir = TestModels.TempDir();
        try
        {
            string marker = Path.Combine(dir, "pwned");
            string pt = WritePt(dir, Payload(kind, marker));
            var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardError = true };
            foreach (var a in new[] { "-c", "import pickle, sys, zipfile; pickle.loads(zipfile.ZipFile(sys.argv[1]).read('archive/data.pkl'))", pt })
                start.ArgumentList.Add(a);
            using (var python = Process.Start(start)!) python.WaitForExit();
            for (int i = 0; i < 50 && !File.Exists(marker); i++) Thread.Sleep(100);
            Assert.True(File.Exists(marker), $"{global}: python did not run the payload");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>Files that are not torch.save zips, or whose pickle is cut short, are errors naming the file and the problem.</summary>
    [Fact]
    public void MalformedFilesAreErrorsNamingTheFile()
    {
        string dir = TestModels.TempDir();
        try
        {
            var cases = new List<(string Path, string Problem)>();
            string notZip = Path.Combine(dir, "text.pt");
            File.WriteAllText(notZip, "not a checkpoint");
            cases.Add((notZip, "not a torch.save zip"));
            string brokenZip = Path.Combine(dir, "broken.pt");
            File.WriteAllBytes(brokenZip, [(byte)'P', (byte)'K', 3, 4, 0, 0]);
            cases.Add((brokenZip, "not a readable torch.save zip"));
            string noPickle = Path.Combine(dir, "nopickle.pt");
            using (var zip = ZipFile.Open(noPickle, ZipArchiveMode.Create)) zip.CreateEntry("archive/version");
            cases.Add((noPickle, "without <name>/data.pkl"));
            var truncated = new List<byte> { 0x80, 2, (byte)'}' };
            Text(truncated, "date");
            cases.Add((WritePt(dir, truncated.ToArray(), "nostop.pt"), "no STOP opcode"));
            var cut = new List<byte> { 0x80, 2, (byte)'X', 100, 0, 0, 0, (byte)'a' };
            cases.Add((WritePt(dir, cut.ToArray(), "cut.pt"), "truncated or malformed pickle"));
            foreach (var (path, problem) in cases)
            {
                var error = Assert.Throws<InvalidDataException>(() => ModelFactory.Create(path));
                Assert.Contains(path, error.Message);
                Assert.Contains(problem, error.Message);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>A module whose <c>_modules</c> holds itself (pickle memo) ends in an error, not a stack overflow.</summary>
    [Fact]
    public void SelfReferencingModuleTreeIsAnError()
    {
        string dir = TestModels.TempDir();
        try
        {
            var pickle = new List<byte> { 0x80, 2, (byte)'}', (byte)'(' };                    // root = {
            Text(pickle, "model");
            Global(pickle, "ultralytics.nn.tasks", "DetectionModel");
            pickle.AddRange([(byte)')', 0x81, (byte)'q', 1, (byte)'}', (byte)'(']);            // NEWOBJ, memo 1, state = {
            Text(pickle, "_modules");
            pickle.AddRange([(byte)'}', (byte)'(']);                                            // _modules = {
            Text(pickle, "model");
            pickle.AddRange([(byte)'h', 1, (byte)'u']);                                         // 'model': the module itself }
            Text(pickle, "yaml");
            pickle.AddRange([(byte)'}', (byte)'u', (byte)'b', (byte)'u', (byte)'.']);          // 'yaml': {} } BUILD } STOP
            string pt = WritePt(dir, pickle.ToArray(), "cycle.pt");
            var error = Assert.Throws<InvalidDataException>(() => ModelFactory.Create(pt));
            Assert.Contains(pt, error.Message);
            Assert.Contains("refers back to itself", error.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void ModuleClassesAreAllowedAndCallablesAreNot()
    {
        Assert.True(PickleGlobals.IsAllowed("ultralytics.nn.tasks", "DetectionModel"));
        Assert.True(PickleGlobals.IsAllowed("ultralytics.nn.modules.head", "v10Detect"));
        Assert.True(PickleGlobals.IsAllowed("ultralytics.utils.loss", "v8DetectionLoss"));
        Assert.False(PickleGlobals.IsAllowed("ultralytics.utils", "v8"));
        Assert.False(PickleGlobals.IsAllowed("ultralytics.utils.torch_utils", "v2_helper"));
        Assert.True(PickleGlobals.IsAllowed("torch.nn.modules.conv", "Conv2d"));
        Assert.True(PickleGlobals.IsAllowed("torch._utils", "_rebuild_tensor_v2"));
        Assert.False(PickleGlobals.IsAllowed("ultralytics.utils.checks", "check_requirements"));
        Assert.False(PickleGlobals.IsAllowed("torch", "load"));
        Assert.False(PickleGlobals.IsAllowed("builtins", "getattr"));
        Assert.False(PickleGlobals.IsAllowed("torch.nn.modules.module", "_global_forward_hooks"));
    }

    // The pickle bytes of each payload: a call of the global with a shell command (or Python code) that creates marker.
    private static byte[] Payload(string kind, string marker)
    {
        var pickle = new List<byte>();
        string command = $"touch '{marker}'";
        switch (kind)
        {
            case "os.system":
                pickle.AddRange([0x80, 2]);
                Global(pickle, "os", "system");
                Text(pickle, command);
                pickle.AddRange([0x85, (byte)'R', (byte)'.']);          // TUPLE1 REDUCE STOP
                break;
            case "__builtin__.eval":
                pickle.AddRange([0x80, 2]);
                Global(pickle, "__builtin__", "eval");
                Text(pickle, $"open({System.Text.Json.JsonSerializer.Serialize(marker)}, 'w').close()");
                pickle.AddRange([0x85, (byte)'R', (byte)'.']);
                break;
            case "subprocess.check_call":
                pickle.AddRange([0x80, 4]);
                Text(pickle, "subprocess"); pickle.Add(0x94);            // MEMOIZE → 0
                Text(pickle, "check_call"); pickle.Add(0x94);            // MEMOIZE → 1
                pickle.AddRange([(byte)'h', 0, (byte)'h', 1, 0x93]);      // BINGET 0, BINGET 1, STACK_GLOBAL
                pickle.Add((byte)']');                                    // EMPTY_LIST
                foreach (var part in new[] { "touch", marker }) { Text(pickle, part); pickle.Add((byte)'a'); }
                pickle.AddRange([0x85, (byte)'R', (byte)'.']);
                break;
            default:                                                      // a checkpoint-looking dict, then the payload
                pickle.AddRange([0x80, 2, (byte)'}', (byte)'(']);         // EMPTY_DICT MARK
                Text(pickle, "date"); Text(pickle, "2024-01-01");
                Text(pickle, "model"); Global(pickle, "collections", "OrderedDict");
                pickle.AddRange([(byte)')', (byte)'R']);                  // EMPTY_TUPLE REDUCE
                Text(pickle, "train_args"); Global(pickle, "posix", "system"); Text(pickle, command);
                pickle.AddRange([0x85, (byte)'R', (byte)'u', (byte)'.']);  // TUPLE1 REDUCE SETITEMS STOP
                break;
        }
        return pickle.ToArray();
    }

    private static void Global(List<byte> pickle, string module, string name)
    {
        pickle.Add((byte)'c');
        pickle.AddRange(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
    }

    private static void Text(List<byte> pickle, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        pickle.Add((byte)'X');
        pickle.AddRange(BitConverter.GetBytes(bytes.Length));
        pickle.AddRange(bytes);
    }

    // torch.save's layout around the pickle.
    private static string WritePt(string dir, byte[] pickle, string name = "evil.pt")
    {
        string path = Path.Combine(dir, name);
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        using (var entry = zip.CreateEntry("archive/data.pkl", CompressionLevel.NoCompression).Open()) entry.Write(pickle);
        using (var version = zip.CreateEntry("archive/version", CompressionLevel.NoCompression).Open()) version.Write("3\n"u8);
        return path;
    }
}
