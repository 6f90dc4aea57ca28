using OpenCvSharp;
using Osprey.Inference;
using Osprey.Serving;
using Osprey.Tests.Data;

namespace Osprey.Tests.Serving;

/// <summary>Loads, swaps, leases and refusals of <see cref="ModelHost"/> on real tiny models.</summary>
public class ModelHostTests
{
    [Fact]
    public async Task ASwappedModelLivesUntilTheBatchHoldingItEnds()
    {
        string dir = DataTestFiles.NewTempDir();
        try
        {
            string a = ServeTestSupport.WriteTinyModel(dir, "a", seed: 1), b = ServeTestSupport.WriteTinyModel(dir, "b", seed: 2);
            var opened = new List<WrappedDetector>();
            using var host = new ModelHost(path =>
            {
                var detector = new WrappedDetector(Predictor.Load(path, ServeTestSupport.TinyOptions));
                lock (opened) opened.Add(detector);
                return detector;
            });
            var events = new List<ServeEvent>();
            host.Events += events.Add;

            var v1 = await host.LoadAsync(a);
            Assert.Equal((1, a, "torch", 80, 64), (v1.Version, v1.Path, v1.Backend, v1.Names.Count, v1.ImageSize));
            var lease = host.Acquire();                       // a batch running on v1 …
            var v2 = await host.LoadAsync(b);                 // … while v2 replaces it
            Assert.Equal(2, v2.Version);
            Assert.Equal(2, host.Current!.Version);
            Assert.False(opened[0].IsDisposed, "v1 was disposed while a batch still held it");
            using (var image = ServeTestSupport.Picture(96, 64))
                Assert.Equal(3, lease.Model.Detector.Predict(new[] { image })[0].Detections.Count);   // and it still predicts
            lease.Dispose();
            Assert.True(opened[0].IsDisposed, "v1 outlived its last batch");
            Assert.True(lease.Model.IsDisposed);

            using (var next = host.Acquire()) Assert.Equal(2, next.Model.Info.Version);
            Assert.False(opened[1].IsDisposed);
            Assert.Equal(new[] { ServeEventKind.Loaded, ServeEventKind.Swapped }, events.Select(e => e.Kind));
            Assert.Equal($"swapped v1 → v2 {b}", events[1].Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public async Task RefusedLoadsNameTheFileAndTheProblemAndChangeNothing()
    {
        string dir = DataTestFiles.NewTempDir();
        try
        {
            string a = ServeTestSupport.WriteTinyModel(dir, "a", seed: 1);
            string twoClasses = ServeTestSupport.WriteTinyModel(dir, "two", seed: 3, nc: 2);
            string corrupt = Path.Combine(dir, "corrupt.safetensors");
            File.WriteAllBytes(corrupt, RandomBytes(4096, seed: 5));
            File.Copy(Path.ChangeExtension(a, ".yaml"), Path.ChangeExtension(corrupt, ".yaml"));    // an architecture, so the bytes are what fails
            string corruptOnnx = Path.Combine(dir, "corrupt.onnx");
            File.WriteAllBytes(corruptOnnx, RandomBytes(4096, seed: 6));
            string missing = Path.Combine(dir, "missing.safetensors");
            string orphan = Path.Combine(dir, "orphan.safetensors");
            File.Copy(a, orphan);                                                        // weights without their architecture YAML

            using var host = new ModelHost(path => Detectors.Open(path, "auto", ServeTestSupport.TinyOptions));
            var refused = new List<string>();
            host.Events += e =>
            {
                if (e.Kind == ServeEventKind.LoadRefused) refused.Add(e.Message);
            };
            await host.LoadAsync(a);

            var cases = new (string Path, ModelLoadFailure Failure, int Status, string Says)[]
            {
                (missing, ModelLoadFailure.NotFound, 404, "not found"),
                (corrupt, ModelLoadFailure.Invalid, 422, "not a model Osprey can load"),
                (corruptOnnx, ModelLoadFailure.Invalid, 422, "not a model Osprey can load"),
                (twoClasses, ModelLoadFailure.Incompatible, 422, "has 2 classes but the serving model v1"),
                (orphan, ModelLoadFailure.Invalid, 422, "No architecture for"),
                (Path.Combine(dir, "notes.txt"), ModelLoadFailure.BadRequest, 400, "expected a model YAML"),
            };
            foreach (var (path, failure, status, says) in cases)
            {
                var e = await Assert.ThrowsAsync<ModelLoadException>(() => host.LoadAsync(path));
                Assert.Equal(failure, e.Failure);
                Assert.Equal(status, e.StatusCode);
                Assert.Contains(path, e.Message);
                Assert.Contains(says, e.Message);
                Assert.Equal(1, host.Current!.Version);
                Assert.Equal(a, host.Current.Path);
            }
            Assert.Equal(cases.Length, refused.Count);
            Assert.Equal(1, host.Loads);
            using var lease = host.Acquire();
            using var image = ServeTestSupport.Picture(96, 64);
            Assert.Equal(3, lease.Model.Detector.Predict(new Mat[] { image })[0].Detections.Count);
            Assert.Equal(2, (await host.LoadAsync(a)).Version);   // versions count successful loads only
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    internal static byte[] RandomBytes(int count, int seed)
    {
        var bytes = new byte[count];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }
}
