package io.ds4j.engine;

import io.ds4j.config.Ds4jProperties;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.DisposableBean;
import org.springframework.stereotype.Service;

/**
 * Owns the native engine: loads the library, opens the configured model and
 * runs every engine call on one dedicated platform thread (native calls block
 * for long and the engine is single-timeline).
 */
@Service
public class EngineService implements DisposableBean {
    private static final Logger log = LoggerFactory.getLogger(EngineService.class);

    private final Ds4jNative nativeLib;
    private final Ds4jProperties props;
    private final ExecutorService owner;
    private volatile MemorySegment engine = MemorySegment.NULL;
    private volatile String loadError;

    public EngineService(Ds4jProperties props) {
        this.props = props;
        this.nativeLib = Ds4jNative.load(Path.of(props.engine().library()));
        this.owner = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "ds4j-engine");
            t.setDaemon(true);
            return t;
        });
        log.info("native engine: {} ({})", nativeLib.version(), nativeLib.library());
        if (props.model().configured()) {
            openModel(props.model().path());
        } else {
            log.warn("no model configured (ds4.model.path is empty): serving health only");
        }
    }

    private void openModel(String path) {
        String options = "threads=" + props.engine().threads();
        try {
            engine = call(() -> nativeLib.engineOpen(path, options));
            log.info("model loaded: {}", path);
        } catch (EngineException e) {
            loadError = e.getMessage();
            log.error("cannot load model {}: {}", path, e.getMessage());
        }
    }

    /** Runs {@code task} on the engine owner thread and waits for it. */
    public <T> T call(java.util.concurrent.Callable<T> task) {
        Future<T> f = owner.submit(task);
        try {
            return f.get();
        } catch (java.util.concurrent.ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) throw r;
            throw new IllegalStateException(e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            f.cancel(true);
            throw new IllegalStateException("interrupted waiting for the engine", e);
        }
    }

    public Ds4jNative nativeLib() {
        return nativeLib;
    }

    public boolean modelLoaded() {
        return !engine.equals(MemorySegment.NULL);
    }

    /** Why the configured model failed to load, or null. */
    public String loadError() {
        return loadError;
    }

    @Override
    public void destroy() {
        MemorySegment e = engine;
        engine = MemorySegment.NULL;
        if (!e.equals(MemorySegment.NULL)) {
            call(() -> {
                nativeLib.engineClose(e);
                return null;
            });
        }
        owner.shutdown();
    }
}
